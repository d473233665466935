/**
 * 5 peers, one of them (peer-4) Byzantine: it publishes -10x its honest gradient (sign-flip) or
 * N(0, 10^2) noise (gaussian) instead of its gradient. Each robust rule is compared with its own
 * fault-free run of the same seed (a robust rule changes the trajectory even without attack:
 * krum follows one peer's gradient and ends ~1.5 points below the others); plain mean is the
 * control that must break. The honest peers must end with identical parameters.
 *
 * The job: MLP, all 8000 bundled MNIST training samples, 256 per peer and step, SGD lr 0.2 with
 * momentum 0.9, 10 epochs = 60 steps (~15 s per run on a quiet machine); clean runs end at
 * 92-95% on the 1000 test digits (one point is 10 digits). Peer keys are seeded (shards go by
 * rank among peer ids, so the attacker's shard is fixed) and the deadline is long (no gradient is
 * left out), so a run is reproducible. (The sweep ran before a start-up fix: a peer could miss
 * step 0 under load, giving another trajectory, worth ~1 point either way, like another seed.)
 * `tsx bench/byzantine-sweep.ts` replays the cluster's arithmetic without the network (equal to
 * a cluster run digit for digit when step 0 is complete). Accuracy %, clean / sign-flip / gaussian:
 *
 *   keys seed  trimmed mean        median              krum
 *   1    1     94.4 / 94.0 / 94.6  94.0 / 94.2 / 94.2  92.6 / 92.3 / 92.3   (this test)
 *   1    2     93.4 / 91.8 / 93.6  93.4 / 92.8 / 94.1  92.0 / 90.5 / 90.5
 *   1    3     94.4 / 93.6 / 94.4  94.9 / 93.8 / 93.7  93.9 / 92.5 / 92.5
 *   1    4     93.4 / 93.7 / 94.5  93.8 / 93.4 / 94.5  92.5 / 91.7 / 91.7
 *   1    5     94.7 / 93.6 / 94.1  93.9 / 93.4 / 94.5  92.3 / 92.9 / 92.9
 *   2    1     94.4 / 92.3 / 94.3  94.0 / 93.4 / 94.4  92.6 / 92.7 / 92.7
 *   2    2     93.4 / 93.2 / 93.3  93.4 / 91.5 / 92.5  92.0 / 92.9 / 92.9
 *   2    3     94.4 / 93.5 / 94.2  94.9 / 94.3 / 93.6  93.9 / 91.9 / 91.9
 *   worst loss      2.1 /  0.6         1.9 /  1.3         2.0 /  2.0
 *
 * Plain mean (same rows): clean 93.2-94.5; sign-flip drives the parameters to NaN after 32-34
 * steps (the job fails: a non-finite gradient cannot be encoded); gaussian ends at 79-82.
 *
 * So the one point holds for trimmed mean under gaussian noise, and within a point or
 * two everywhere else, not with margin. Krum never selects the attacker (its two attacked runs
 * are the same run): its loss is the spread of a rule that follows one batch of 256. Median's
 * gaussian losses are of the same size as the spread between two clean trajectories. Sign-flip
 * x10 costs trimmed mean and median ~1 point on average, systematically: the attacker sits at
 * one extreme of every coordinate, on the side opposite its own honest gradient, so trimming one
 * value per side removes it and the honest extreme on the other side, and the values kept lean
 * against the gradient (low-signal coordinates shrink by ~1/4, like a lower learning rate, plus
 * noise). Checked with the sweep: the mean of the n - f values nearest the coordinate median
 * (meamed=1, same job, the six rows keys 1-2 x seeds 1-3) lost at most 0.6 points to sign-flip
 * and 0.1 to gaussian; and the cost falls with training length (batch 32, lr 0.02, 200 steps:
 * trimmed mean 0.2-0.7, median -0.2-0.5 points, keys 1, seeds 1-3), but 200-step runs do not
 * fit this suite (~160 ms per step for five peers in one process). At 24 steps (the previous
 * version of this test) sign-flip cost 6-8 points.
 * The bounds below are the worst measured loss plus margin; a rule that stopped filtering the
 * attacker fails them at once (plain mean ends at NaN or 80%).
 */
import { describe, expect, it } from 'vitest'
import { parseJobConfig, type AttackConfig } from '../../config/job-config.js'
import { accuracyOf, runCluster, type ClusterPeerResult } from './cluster.js'

type Rule = 'trimmed-mean' | 'mean' | 'median' | 'krum'

const run = async (rule: Rule, attack?: Omit<AttackConfig, 'peers'>): Promise<ClusterPeerResult[]> => runCluster({
  peers: 5,
  job: parseJobConfig({
    id: 'byzantine',
    model: 'mlp',
    seed: 1,
    epochs: 10,
    batchSize: 256,
    minPeers: 5,
    // every peer is alive: a long deadline keeps a loaded machine's hiccups from dropping gradients
    stepDeadlineMs: 10_000,
    optimizer: { type: 'sgd', lr: 0.2, momentum: 0.9 },
    aggregation: { rule, f: 1 },
    ...(attack !== undefined ? { attack: { peers: ['peer-4'], ...attack } } : {})
  })
})

const SIGN_FLIP = { kind: 'sign-flip', magnitude: 10 } as const
const GAUSSIAN = { kind: 'gaussian', magnitude: 10 } as const
// accuracies are multiples of 1/1000: the epsilon only absorbs float rounding of the difference
const points = (p: number): number => p / 100 + 1e-9
/** largest accuracy loss (points) allowed against the rule's clean run: the worst measured plus margin */
const BOUNDS = {
  'trimmed-mean': { gaussian: 1, signFlip: 3 },
  median: { gaussian: 2, signFlip: 3 },
  krum: { signFlip: 3 }
} as const

/** the honest peers, which must have run every step with all five gradients */
function honest(peers: ClusterPeerResult[]): ClusterPeerResult[] {
  const four = peers.slice(0, 4)
  // every step aggregated all five gradients (the attacker's is not missing, it is wrong)
  const short = four.flatMap((p) => p.reports.filter((r) => r.contributors.length < 5).map((r) => `${p.name} step ${r.step}: ${r.contributors.length} of ${r.members.length}, missing ${r.missing.length}, waited ${r.waitedMs.toFixed(0)} ms`))
  expect(short).toEqual([])
  return four
}

/** accuracy of the honest peers, which must hold identical parameters (and so one accuracy) */
function honestAccuracy(peers: ClusterPeerResult[]): number {
  const four = honest(peers)
  expect(four.map((p) => p.failure)).toEqual([undefined, undefined, undefined, undefined])
  expect(new Set(four.map((p) => p.result?.digest)).size).toBe(1)
  return accuracyOf(four[0])
}

describe('one Byzantine peer among five', () => {
  for (const rule of ['trimmed-mean', 'median'] as const) {
    it(`${rule} keeps its accuracy under sign-flip and gaussian attacks`, async () => {
      const clean = honestAccuracy(await run(rule))
      const flipped = honestAccuracy(await run(rule, SIGN_FLIP))
      const noisy = honestAccuracy(await run(rule, GAUSSIAN))
      console.log(`byzantine ${rule}: clean ${clean}, sign-flip ${flipped}, gaussian ${noisy}`)
      expect(clean).toBeGreaterThan(0.9)
      expect(clean - noisy).toBeLessThanOrEqual(points(BOUNDS[rule].gaussian))
      expect(clean - flipped).toBeLessThanOrEqual(points(BOUNDS[rule].signFlip))
    }, 240_000)
  }

  // krum selects one honest gradient whatever the attacker sends, so its sign-flip and gaussian
  // runs were one run (the table above); the cluster runs sign-flip, and the selection under
  // gaussian noise is asserted where it is computed (test/aggregate/robustness.test.ts)
  it('krum keeps its accuracy under a sign-flip attack', async () => {
    const clean = honestAccuracy(await run('krum'))
    const flipped = honestAccuracy(await run('krum', SIGN_FLIP))
    console.log(`byzantine krum: clean ${clean}, sign-flip ${flipped}`)
    expect(clean).toBeGreaterThan(0.9)
    expect(clean - flipped).toBeLessThanOrEqual(points(BOUNDS.krum.signFlip))
  }, 240_000)

  it('plain mean fails under the same attacks', async () => {
    // sign-flip: the parameters blow up; every honest peer stops at the same step, the job diverged
    const flipped = honest(await run('mean', SIGN_FLIP))
    expect(flipped.map((p) => p.result)).toEqual([undefined, undefined, undefined, undefined])
    for (const p of flipped) expect(p.failure).toMatchObject({ name: 'TrainingDivergedError', message: expect.stringMatching(/training diverged/) })
    const noisy = honestAccuracy(await run('mean', GAUSSIAN))
    console.log(`byzantine mean: sign-flip diverged after ${flipped[0].reports.length} steps, gaussian ${noisy}`)
    // the robust rules' clean runs end at 92-95%: this is 7+ points below any of them
    expect(noisy).toBeLessThan(0.85)
  }, 240_000)
})
