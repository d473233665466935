/**
 * How the gradient exchange scales, without the network: `npx tsx bench/scale-sim.ts [--quick]`.
 *
 * 1. Bytes each member sends per step at 4, 16, 64 and 256 members (f = 1, qsgd 8-bit, the
 *    wire format's real message sizes): stream (a message to every other member), gossipsub
 *    without relaying (the same messages: measured x1.007 of stream in test/p2p/four-peers),
 *    and the robust reduce-scatter (`exchange: reduce-scatter`; ml/aggregate/reduce-scatter.ts,
 *    daemon/training/reduce-scatter-step.ts: to each member one message with its parts of the
 *    2f+1 slices that member replicates, then each replica's qsgd-encoded results to every
 *    member; the same seed for a slice on every honest replica, so their results are the same
 *    bytes). Real loopback runs at 4, 8 and 16 peers: bench/scale-loopback.ts.
 * 2. Aggregation time per member, measured on random vectors (median of repeats): stream runs
 *    the rule over P whole vectors; reduce-scatter runs it over P parts of each of the 2f+1
 *    slices the member replicates, then the median of 2f+1 replicas over the whole vector.
 * 3. Accuracy under one attacker: 8 members train mlp on MNIST (the same shards, seeds and
 *    qsgd rounding as the daemon's sync trainer), trimmed mean f = 1, clean and with one
 *    member sending its gradient sign-flipped x10 and, in reduce-scatter, also returning its
 *    replicated slices' results sign-flipped x10.
 */
import '../polyfill.js'
import { AggregationConfigSchema, parseJobConfig } from '../config/job-config.js'
import { createAggregator } from '../ml/aggregate/index.js'
import { aggregateMedian } from '../ml/aggregate/coordinate-wise.js'
import { reduceScatterAggregate, sliceRanges, sliceReplicas } from '../ml/aggregate/reduce-scatter.js'
import { applyAttack } from '../ml/attacks/index.js'
import { createCodec } from '../ml/compress/index.js'
import { createRng, deriveSeed } from '../ml/core/rng.js'
import { epochPermutation, gatherBatch, shardBatchIndices } from '../ml/data/dataset.js'
import { createOptimizer } from '../ml/optim/index.js'
import { encodeGradientMessage } from '../protocols/messages/gradient-message.js'
import { evaluateDataset } from '../daemon/training/evaluate.js'
import { createJobRuntime } from '../daemon/training/job-runtime.js'
import { median } from './support/stats.js'

const quick = process.argv.includes('--quick')
const F = 1
const BUCKET = 512
const codec = createCodec({ codec: 'qsgd', bits: 8, bucketSize: BUCKET })
const SENDER = '12D3KooWBw1yowgVeS24q3G9eCMJL8iYeNdjfuwwLoj2fUTCGy2U'
/** a gradient message carrying `count` values on the wire (header, digest, [slice header], payload) */
const messageBytes = (count: number, sliced = false): number => encodeGradientMessage({
  jobId: 'job-0123abcd', step: 1, epoch: 0, sender: SENDER, codec: 'qsgd', parameterCount: count, digest: new Uint8Array(32), payload: new Uint8Array(codec.encodedSize(count)),
  ...(sliced ? { slices: { phase: 'parts', total: 1, first: 0, count: 1 } as const } : {})
}).length

/**
 * bytes member `i` sends per step in the reduce-scatter with P members, as the daemon sends them
 * (daemon/training/reduce-scatter-step.ts): one parts message to each other member holding the
 * slices that member replicates, and one results message of its own replicated slices to each
 * other member
 */
function reduceScatterBytes(d: number, members: number, i: number): number {
  const ranges = sliceRanges(d, members, BUCKET)
  // the values of the slices member r replicates: r - 2f .. r (mod P)
  const runValues = (r: number): number => {
    let values = 0
    for (let s = 0; s < members; s++) if (sliceReplicas(s, members, F).includes(r)) values += ranges[s].end - ranges[s].start
    return values
  }
  let bytes = 0
  for (let j = 0; j < members; j++) if (j !== i) bytes += messageBytes(runValues(j), true)
  return bytes + messageBytes(runValues(i), true) * (members - 1)
}

const models = [{ name: 'lenet5', d: 61_706 }, { name: 'mlp-large', d: 1_863_690 }]
const sizes = [4, 16, 64, 256]
const kib = (b: number): string => `${(b / 1024).toFixed(0)} KiB`

console.log(`bytes sent per member per step (f = ${F}, qsgd 8-bit, bucket ${BUCKET}); reduce-scatter: mean over members (min-max)`)
console.log(['model'.padEnd(10), 'P'.padStart(4), 'stream'.padStart(12), 'gossipsub'.padStart(12), 'reduce-scatter'.padStart(28), 'rs / stream'.padStart(12)].join(' '))
for (const { name, d } of models) {
  for (const P of sizes) {
    const stream = (P - 1) * messageBytes(d)
    const rs = Array.from({ length: P }, (_, i) => reduceScatterBytes(d, P, i))
    const mean = rs.reduce((a, b) => a + b, 0) / P
    console.log([name.padEnd(10), String(P).padStart(4), kib(stream).padStart(12), kib(stream).padStart(12),
      `${kib(mean)} (${kib(Math.min(...rs))}-${kib(Math.max(...rs))})`.padStart(28), `x${(mean / stream).toFixed(2)}`.padStart(12)].join(' '))
  }
}

function randomVectors(n: number, d: number, seed: number): Float32Array[] {
  const rng = createRng(seed)
  return Array.from({ length: n }, () => Float32Array.from({ length: d }, () => rng.nextFloat() - 0.5))
}
function timeMs(fn: () => void, repeats: number): number {
  fn()
  const samples: number[] = []
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now()
    fn()
    samples.push(performance.now() - t0)
  }
  return median(samples)
}

console.log(`\naggregation per member per step, trimmed mean f = ${F}, median ms (reduce-scatter: its 2f+1 slices, then the median of 2f+1 replicas)`)
console.log(['model'.padEnd(10), 'P'.padStart(4), 'stream ms'.padStart(12), 'reduce-scatter ms'.padStart(18), 'ratio'.padStart(8)].join(' '))
const aggregator = createAggregator(AggregationConfigSchema.parse({ rule: 'trimmed-mean', f: F }))
for (const { name, d } of models) {
  for (const P of sizes) {
    // P whole vectors of mlp-large at 256 members take 1.9 GB: measured up to 64
    if (P * d > 130_000_000) {
      console.log([name.padEnd(10), String(P).padStart(4), '-'.padStart(12), '-'.padStart(18), '-'.padStart(8)].join(' '))
      continue
    }
    const vectors = randomVectors(P, d, P)
    const repeats = quick ? 3 : 7
    const stream = timeMs(() => aggregator.aggregate(vectors), repeats)
    const slices = sliceRanges(d, P, BUCKET)
    const mine = slices.filter((_, s) => sliceReplicas(s, P, F).includes(0))
    const replicaResults = randomVectors(2 * F + 1, d, 99)
    const out = new Float32Array(d)
    const rs = timeMs(() => {
      for (const slice of mine) aggregator.aggregate(vectors.map((v) => v.subarray(slice.start, slice.end)))
      aggregateMedian(replicaResults, d, out)
    }, repeats)
    console.log([name.padEnd(10), String(P).padStart(4), stream.toFixed(2).padStart(12), rs.toFixed(2).padStart(18), `x${(rs / stream).toFixed(2)}`.padStart(8)].join(' '))
  }
}

// 3. accuracy under one attacker
const MEMBERS = 8
const ATTACKER = 5
const job = parseJobConfig({
  model: 'mlp', epochs: quick ? 2 : 4, batchSize: 32, trainSamples: 8192, minPeers: MEMBERS,
  optimizer: { type: 'sgd', lr: 0.05, momentum: 0.9 }, compression: { codec: 'qsgd', bits: 8 }, aggregation: { rule: 'trimmed-mean', f: F }
})
const runtime = await createJobRuntime(job, { computeThreads: 1 })
const d = runtime.model.layout.totalSize
const attack = { peers: ['attacker'], kind: 'sign-flip' as const, magnitude: 10 }
async function train(exchange: 'stream' | 'reduce-scatter', attacked: boolean): Promise<number> {
  const params = runtime.model.initParameters(job.seed)
  const optimizer = createOptimizer(job.optimizer, d)
  const bs = job.batchSize
  let step = 0
  for (let epoch = 0; epoch < job.epochs; epoch++) {
    const perm = epochPermutation(runtime.train.size, job.seed, epoch)
    for (let cursor = 0; cursor + MEMBERS * bs <= runtime.train.size; cursor += MEMBERS * bs) {
      const grads: Float32Array[] = []
      for (let rank = 0; rank < MEMBERS; rank++) {
        const gradient = (await runtime.computer.computeGradient(params, gatherBatch(runtime.train, shardBatchIndices(perm, cursor, rank, MEMBERS, bs)))).gradient
        const sent = attacked && rank === ATTACKER ? applyAttack(attack, gradient, { step, seed: job.seed }) : gradient
        grads.push(codec.decode(codec.encode(sent, createRng(deriveSeed(job.seed, step, rank, 0x5eed))), d))
      }
      const aggregate = exchange === 'stream'
        ? aggregator.aggregate(grads)
        : reduceScatterAggregate(grads, {
          aggregator,
          f: F,
          align: BUCKET,
          corrupt: attacked ? (replica, _slice, honest) => replica === ATTACKER ? honest.map((v) => -10 * v) : undefined : undefined
        })
      optimizer.step(params, aggregate, job.optimizer.lr)
      step++
    }
  }
  return (await evaluateDataset(runtime.computer, params, runtime.test, 256)).accuracy
}

console.log(`\naccuracy, ${MEMBERS} members, mlp on ${job.trainSamples} MNIST samples, ${job.epochs} epochs, trimmed mean f = ${F}; attacker: sign-flip x10 (and, in reduce-scatter, its replicated slices' results x-10)`)
for (const exchange of ['stream', 'reduce-scatter'] as const) {
  const clean = await train(exchange, false)
  const attacked = await train(exchange, true)
  console.log(`${exchange.padEnd(16)} clean ${(clean * 100).toFixed(2)} %   one attacker ${(attacked * 100).toFixed(2)} %`)
}
await runtime.close()
