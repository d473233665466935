/** What `p2pmld start` prints while it trains: progress with pace and ETA, epochs from 1, membership changes. */
import { Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { createMembershipChangeTracker } from '../../daemon/peer/membership-changes.js'
import { MembershipView } from '../../daemon/membership/membership-view.js'
import { MembershipStateSchema } from '../../protocols/job/job-protocol.js'
import type { StepReport } from '../../daemon/training/sync-trainer.js'
import { createDaemonConsole } from '../../cli/support/daemon-console.js'
import { formatStep } from '../../cli/support/progress.js'

function capture(): { stream: NodeJS.WriteStream, lines: () => string[] } {
  let text = ''
  const stream = new Writable({ write(chunk, _enc, done) { text += String(chunk); done() } }) as unknown as NodeJS.WriteStream
  return { stream, lines: () => text.split('\n').filter((l) => l !== '') }
}

/**
 * A coordinator's membership of a, b and k from step 0, and the tracker of a member that adopts
 * the coordinator's memberships: `adopt()` after each change gives the member's new view.
 */
function adoptingMember(): { coordinator: MembershipView, adopt: () => MembershipView, tracker: ReturnType<typeof createMembershipChangeTracker> } {
  const coordinator = new MembershipView()
  for (const p of ['a', 'b', 'k']) coordinator.join(p, 0)
  const adopted = (): MembershipView => MembershipView.fromSnapshot(MembershipStateSchema.parse({ version: 1, ...coordinator.toSnapshot() }))
  let current = adopted()
  const tracker = createMembershipChangeTracker(() => undefined, (peer) => current.record(peer))
  return { coordinator, adopt: () => (current = adopted()), tracker }
}

/**
 * adoptingMember's member after it observed step `step - 1` with k and k's eviction at `step`
 * (observed at `seenAt`, by `source`): `evicted` is what that observation reported.
 */
function memberThatSawEviction(step: number, seenAt: number, source: 'report' | 'membership'): ReturnType<typeof adoptingMember> & { evicted: ReturnType<ReturnType<typeof adoptingMember>['tracker']['observe']> } {
  const member = adoptingMember()
  member.tracker.observe(step - 1, member.adopt().membersAt(step - 1))
  member.coordinator.leave('k', step)
  return { ...member, evicted: member.tracker.observe(seenAt, member.adopt().membersAt(seenAt), source) }
}

const report = (step: number, epoch: number, stepInEpoch: number, members: string[]): StepReport => ({
  step, epoch, members, contributors: members, samples: 32 * members.length, missing: [], digest: '', fullDigest: true, peerDigests: new Map(), loss: 0.5, waitedMs: 0,
  stepMs: 200, epochEnded: false, stepInEpoch, stepsInEpoch: 10
})

describe('formatStep', () => {
  it('counts epochs from 1 and adds samples/s, the epoch length and the ETA', () => {
    expect(formatStep(0, 3, 4, 10, 0.25)).toBe('epoch 1/3: 40% (4/10 steps) loss 0.2500')
    // 6 steps left in this epoch + 2 epochs of 10 = 26 steps of 500 ms
    expect(formatStep(0, 3, 4, 10, 0.25, { samplesPerSecond: 256, stepMs: 500 }))
      .toBe('epoch 1/3: 40% (4/10 steps) loss 0.2500, 256 samples/s, epoch ~5s, ETA 13s')
  })
})

describe('daemon console', () => {
  /** a 2-epoch job of 3 members on a console whose clock the test moves; `epoch(e)` runs its 10 steps, 200 ms each */
  const twoEpochs = (): { out: ReturnType<typeof capture>, screen: ReturnType<typeof createDaemonConsole>, wait: (ms: number) => void, epoch: (e: number) => void } => {
    let clock = 0
    const out = capture()
    const job = parseJobConfig({ epochs: 2, batchSize: 32, minPeers: 3 })
    const screen = createDaemonConsole(out.stream, () => job, { now: () => clock })
    const epoch = (e: number): void => {
      for (let i = 1; i <= 10; i++) {
        clock += 200
        screen.events.onStep!(report(10 * e + i - 1, e, i, ['a', 'b', 'c']))
      }
    }
    return { out, screen, wait: (ms) => { clock += ms }, epoch }
  }

  it('prints progress lines with the pace of the recent steps, each epoch with its time, and the result', () => {
    const { out, screen, epoch } = twoEpochs()
    epoch(0)
    screen.events.onEpoch!({ epoch: 0, step: 10, trainLoss: 0.5, validationLoss: 0.4, validationAccuracy: 0.9, lr: 0.05, durationMs: 15 })
    const lines = out.lines()
    // one line per 10 % (not at 100 %: the epoch line follows), 3 peers x 32 samples every 200 ms
    expect(lines.filter((l) => l.startsWith('epoch 1/2: '))).toHaveLength(9)
    expect(lines).toContain('epoch 1/2: 50% (5/10 steps) loss 0.5000, 480 samples/s, epoch ~2s, ETA 3s')
    // the epoch took 10 steps of 200 ms (its record's 15 ms are the validation only)
    expect(lines.at(-1)).toBe('epoch 1/2 done in 2s: train loss 0.5000, val loss 0.4000, val acc 90.00 %, lr 0.05')
  })

  it('keeps an epoch end (validation) out of the step rate and counts it once per epoch in the ETA', () => {
    const { out, screen, wait, epoch } = twoEpochs()
    epoch(0)
    screen.events.onEpoch!({ epoch: 0, step: 10, trainLoss: 0.5, validationLoss: 0.4, validationAccuracy: 0.9, lr: 0.05, durationMs: 1000 })
    // the next step comes 1 s of validation after a step's 200 ms
    wait(1000)
    epoch(1)
    // still 3 x 32 samples every 200 ms; 5 steps and this epoch's end left: 5 x 200 ms + 1 s
    // (averaged into the step time, the validation read 330 samples/s at 20 % and 354 at 50 %, with
    // the next epoch's end left out of the ETA: 'epoch ~2s, ETA 1s' at 50 %)
    expect(out.lines()).toContain('epoch 2/2: 20% (2/10 steps) loss 0.5000, 480 samples/s, epoch ~3s, ETA 2s')
    expect(out.lines()).toContain('epoch 2/2: 50% (5/10 steps) loss 0.5000, 480 samples/s, epoch ~3s, ETA 2s')
  })

  it('says when a job-wide pause holds the job and when it goes on, and keeps the pause out of the step rate', () => {
    const { out, screen, wait } = twoEpochs()
    const steps = (from: number, to: number): void => {
      for (let i = from; i <= to; i++) {
        wait(200)
        screen.events.onStep!(report(i - 1, 0, i, ['a', 'b', 'c']))
      }
    }
    steps(1, 4)
    screen.events.onPaused!(4)
    wait(60_000)
    screen.events.onResumed!(4)
    steps(5, 6)
    const lines = out.lines()
    expect(lines).toContain('job paused before step 4; p2pmld job resume goes on')
    expect(lines).toContain('job resumed at step 4')
    // 3 x 32 samples every 200 ms still (the minute's wait counted as a step read 26 samples/s)
    expect(lines).toContain('epoch 1/2: 50% (5/10 steps) loss 0.5000, 480 samples/s, epoch ~2s, ETA 3s')
  })

  it('gives no time for an epoch this peer joined midway: its part of it is not the epoch\'s', () => {
    let clock = 0
    const out = capture()
    const job = parseJobConfig({ epochs: 20, batchSize: 32, minPeers: 3 })
    const screen = createDaemonConsole(out.stream, () => job, { now: () => clock })
    for (let i = 8; i <= 10; i++) {
      clock += 50
      screen.events.onStep!(report(60 + i, 6, i, ['a', 'b']))
    }
    screen.events.onEpoch!({ epoch: 6, step: 70, trainLoss: 0.5, validationLoss: 0.4, validationAccuracy: 0.9, lr: 0.05, durationMs: 15 })
    expect(out.lines().at(-1)).toBe('epoch 7/20 done (joined or resumed during it): train loss 0.5000, val loss 0.4000, val acc 90.00 %, lr 0.05')
  })

  it('an epoch closed before this peer\'s first step (a host resumed from its checkpoint) is out of the job\'s epochs', () => {
    const out = capture()
    const job = parseJobConfig({ epochs: 60, batchSize: 32, minPeers: 3 })
    const screen = createDaemonConsole(out.stream, () => job)
    screen.events.onEpoch!({ epoch: 47, step: 6000, trainLoss: 0.5, validationLoss: 0.4, validationAccuracy: 0.9, lr: 0.05, durationMs: 15 })
    // it read 'epoch 48/0 done'
    expect(out.lines().at(-1)).toMatch(/^epoch 48\/60 done/)
  })

  it('names the members at this peer\'s first step, and again after it was evicted', () => {
    const out = capture()
    const job = parseJobConfig({ epochs: 2, batchSize: 32, minPeers: 3 })
    const screen = createDaemonConsole(out.stream, () => job, { selfId: () => 'b' })
    screen.events.onStep!(report(0, 0, 1, ['a', 'b']))
    screen.events.onStep!(report(1, 0, 2, ['a', 'b']))
    screen.events.onEvicted!(2)
    const crowd = Array.from({ length: 12 }, (_, i) => `p${i}`)
    screen.events.onStep!(report(5, 0, 6, ['b', ...crowd]))
    expect(out.lines().filter((l) => !l.startsWith('epoch '))).toEqual([
      // a host that waited for minPeers said nothing about who came
      'training at step 0 with 2 members: this peer, a',
      'this peer was evicted from the job at step 2: re-joining',
      'training at step 5 with 13 members: this peer, p0, p1, p2, p3, p4, p5, p6 and 5 more'
    ])
  })

  it('names the members of the next job too, once one finished (job submit, auto-join)', () => {
    const out = capture()
    const job = parseJobConfig({ epochs: 1, batchSize: 32, minPeers: 3 })
    const screen = createDaemonConsole(out.stream, () => job, { selfId: () => 'b' })
    screen.events.onStep!(report(0, 0, 1, ['a', 'b']))
    screen.events.onFinished!({ reason: 'epochs', test: { loss: 0.1, accuracy: 0.9, count: 10 }, step: 1, epoch: 1, history: [], digest: 'd1' })
    screen.events.onStep!(report(0, 0, 1, ['a', 'b', 'c']))
    expect(out.lines().filter((l) => l.startsWith('training at'))).toEqual([
      'training at step 0 with 2 members: this peer, a',
      // it printed nothing for the second job
      'training at step 0 with 3 members: this peer, a, c'
    ])
  })

  it('says so when the job finished before this daemon ran a step of it (admitted as it ended: it took the final state)', () => {
    const out = capture()
    const job = parseJobConfig({ epochs: 1, batchSize: 32, minPeers: 3 })
    const screen = createDaemonConsole(out.stream, () => job, { selfId: () => 'b' })
    const result = { reason: 'epochs' as const, test: { loss: 0.1, accuracy: 0.928, count: 10 }, step: 250, epoch: 2, history: [], digest: 'd1' }
    screen.events.onFinished!(result)
    // the next job, trained: the usual line
    screen.events.onStep!(report(0, 0, 1, ['a', 'b']))
    screen.events.onFinished!({ ...result, digest: 'd2' })
    expect(out.lines().filter((l) => l.startsWith('job finished'))).toEqual([
      'job finished (epochs) at step 250: test accuracy 92.80 %, digest d1 (its final state, taken from the members: this daemon ran no step of it)',
      'job finished (epochs) at step 250: test accuracy 92.80 %, digest d2'
    ])
  })

  it('prints joins, leaves and evictions as plain lines', () => {
    const out = capture()
    const screen = createDaemonConsole(out.stream, () => undefined, { selfId: () => 'peer-a' })
    screen.events.onMembershipChange!({ kind: 'joined', peerId: 'peer-d', step: 12, members: 4 })
    screen.events.onMembershipChange!({ kind: 'left', peerId: 'peer-b', step: 20, members: 3 })
    screen.events.onMembershipChange!({ kind: 'evicted', peerId: 'peer-c', step: 31, members: 2 })
    screen.events.onEvicted!(40)
    screen.events.onLeft!(55, 2, 1)
    screen.events.onLeft!(56, 0, 1)
    // too few left for the rule (trimmed-mean f=1 needs 3): they wait, they do not carry it on
    screen.events.onLeft!(57, 2, 3)
    screen.events.onLeft!(58, 1, 3)
    // its own, as the coordinator's membership says (a reviewer read 'peer <its own id> was evicted')
    screen.events.onMembershipChange!({ kind: 'evicted', peerId: 'peer-a', step: 40, members: 2 })
    expect(out.lines()).toEqual([
      'peer peer-d joined at step 12: 4 members',
      'peer peer-b left at step 20: 3 members',
      'peer peer-c was evicted (it missed too many steps) at step 31: 2 members',
      'this peer was evicted from the job at step 40: re-joining',
      'left the job at step 55: 2 other members carry it on',
      'left the job at step 56 (no other member: its checkpoint resumes it)',
      'left the job at step 57: its 2 other members wait for another to join (the aggregation rule needs 3)',
      'left the job at step 58: its 1 other member waits for another to join (the aggregation rule needs 3)',
      'this peer was evicted (it missed too many steps) at step 40: 2 members'
    ])
  })

  it('says when a leave or an eviction leaves fewer members than the rule needs: the job waits for a join', () => {
    const out = capture()
    // trimmed mean with f = 1: 3 a step
    const job = parseJobConfig({ epochs: 2, batchSize: 32, minPeers: 3 })
    const screen = createDaemonConsole(out.stream, () => job, { selfId: () => 'a' })
    screen.events.onMembershipChange!({ kind: 'evicted', peerId: 'peer-c', step: 11, members: 2 })
    screen.events.onMembershipChange!({ kind: 'joined', peerId: 'peer-d', step: 30, members: 3 })
    screen.events.onMembershipChange!({ kind: 'left', peerId: 'peer-b', step: 40, members: 2 })
    expect(out.lines()).toEqual([
      'peer peer-c was evicted (it missed too many steps) at step 11: 2 members, fewer than the aggregation rule needs (3): the job waits for a peer to join (p2pmld start --bootstrap with a member\'s address)',
      'peer peer-d joined at step 30: 3 members',
      'peer peer-b left at step 40: 2 members, fewer than the aggregation rule needs (3): the job waits for a peer to join (p2pmld start --bootstrap with a member\'s address)'
    ])
  })

  it('says an async job evicts for missed averaging rounds, not steps', () => {
    const out = capture()
    const job = parseJobConfig({ epochs: 2, batchSize: 32, mode: 'async', optimizer: { type: 'sgd', lr: 0.05, momentum: 0 } })
    const screen = createDaemonConsole(out.stream, () => job, { selfId: () => 'a' })
    screen.events.onMembershipChange!({ kind: 'evicted', peerId: 'peer-c', step: 31, members: 3 })
    expect(out.lines()).toEqual(['peer peer-c was evicted (it missed too many averaging rounds) at step 31: 3 members'])
  })
})

describe('membership change tracker', () => {
  it('tells a clean leave from an eviction, and a re-join after a leave from the leave', () => {
    const announced = new Map<string, number>()
    const tracker = createMembershipChangeTracker((peer) => announced.get(peer))
    expect(tracker.observe(0, ['a', 'b', 'c'])).toEqual([])
    expect(tracker.observe(5, ['a', 'b', 'c', 'd'])).toEqual([{ kind: 'joined', peerId: 'd', step: 5, members: 4 }])
    announced.set('b', 8)
    expect(tracker.observe(8, ['a', 'c', 'd'])).toEqual([{ kind: 'left', peerId: 'b', step: 8, members: 3 }])
    expect(tracker.observe(9, ['a', 'd'])).toEqual([{ kind: 'evicted', peerId: 'c', step: 9, members: 2 }])
    // b comes back and later vanishes without a new announcement: evicted, not the old leave
    expect(tracker.observe(12, ['a', 'b', 'd'])).toEqual([{ kind: 'joined', peerId: 'b', step: 12, members: 3 }])
    expect(tracker.observe(20, ['a', 'd'])).toEqual([{ kind: 'evicted', peerId: 'b', step: 20, members: 2 }])
  })

  it('counts a leave once when a report of an earlier step arrives after the membership change was seen', () => {
    // session-core feeds it step reports (the members of the step just done) and membership-version
    // changes (the members at the current step): the second can see a leave first
    const announced = new Map([['c', 11]])
    const tracker = createMembershipChangeTracker((peer) => announced.get(peer))
    tracker.observe(10, ['a', 'b', 'c'])
    expect(tracker.observe(11, ['a', 'b'])).toEqual([{ kind: 'left', peerId: 'c', step: 11, members: 2 }])
    // the report of step 10, late: c was still a member there
    expect(tracker.observe(10, ['a', 'b', 'c'])).toEqual([])
    expect(tracker.observe(11, ['a', 'b'])).toEqual([])
    expect(tracker.observe(12, ['a', 'b'])).toEqual([])
  })

  it('counts a leave once when the report of the step it took effect at still lists the leaver', () => {
    // the membership change is seen while step 11 runs; the step had the leaver's gradient and
    // its report lists it (a leave reaching this peer late in the step, on a loaded machine)
    const announced = new Map([['c', 11]])
    const tracker = createMembershipChangeTracker((peer) => announced.get(peer))
    tracker.observe(10, ['a', 'b', 'c'])
    expect(tracker.observe(11, ['a', 'b'], 'membership')).toEqual([{ kind: 'left', peerId: 'c', step: 11, members: 2 }])
    expect(tracker.observe(11, ['a', 'b', 'c'])).toEqual([])
    expect(tracker.observe(12, ['a', 'b'])).toEqual([])
    // a report of a later step is read as before: a join there is one
    expect(tracker.observe(13, ['a', 'b', 'd'])).toEqual([{ kind: 'joined', peerId: 'd', step: 13, members: 3 }])
  })

  it('a leave that arrives after the membership was seen at a step is reported at that step by its report', () => {
    // paused at step 7, the membership seen there still lists c; c leaves from 7 while paused,
    // and step 7's report, the first to miss it, says so (a CI run printed 'left at step 8')
    const announced = new Map([['c', 7]])
    const records = new Map([['c', { joinStep: 0, leaveStep: 7 }]])
    const tracker = createMembershipChangeTracker((peer) => announced.get(peer), (peer) => records.get(peer))
    tracker.observe(6, ['a', 'b', 'c'])
    expect(tracker.observe(7, ['a', 'b', 'c'], 'membership')).toEqual([])
    expect(tracker.observe(7, ['a', 'b'])).toEqual([{ kind: 'left', peerId: 'c', step: 7, members: 2 }])
    expect(tracker.observe(8, ['a', 'b'])).toEqual([])
  })

  it('reports a leave at its step when that step\'s report, read at its start, still listed the leaver', () => {
    // c finished step 10 and left from 11; its leave came while 11 ran, whose report lists the
    // members at its start (the members that stayed said 'left at step 12', c and the logs 11)
    const announced = new Map([['c', 11]])
    const records = new Map([['c', { joinStep: 0, leaveStep: Infinity }]])
    const tracker = createMembershipChangeTracker((peer) => announced.get(peer), (peer) => records.get(peer))
    tracker.observe(10, ['a', 'b', 'c'])
    records.set('c', { joinStep: 0, leaveStep: 11 })
    expect(tracker.observe(11, ['a', 'b', 'c'])).toEqual([])
    expect(tracker.observe(12, ['a', 'b'], 'membership')).toEqual([{ kind: 'left', peerId: 'c', step: 11, members: 2 }])
    expect(tracker.observe(12, ['a', 'b'])).toEqual([])
  })

  it('reports a change at the step the membership records for it, not the step this peer noticed it', () => {
    const records = new Map([['c', { joinStep: 0, leaveStep: 21 }], ['d', { joinStep: 4, leaveStep: Infinity }], ['e', { joinStep: 30, leaveStep: Infinity }]])
    const tracker = createMembershipChangeTracker(() => undefined, (peer) => records.get(peer))
    tracker.observe(0, ['a', 'b', 'c'])
    // noticed at 22, recorded at 21 (what the coordinator printed); d noticed at 5, admitted at 4
    expect(tracker.observe(22, ['a', 'b', 'd'])).toEqual([
      { kind: 'joined', peerId: 'd', step: 4, members: 3 },
      { kind: 'evicted', peerId: 'c', step: 21, members: 3 }
    ])
    // a record later than the step observed is another membership's: the observed step stands
    expect(tracker.observe(25, ['a', 'b', 'd', 'e'])).toEqual([{ kind: 'joined', peerId: 'e', step: 25, members: 4 }])
    // c re-admitted at the step it was evicted at keeps its first join step (0) in the record: that
    // is not this join's step (a reviewer saw 'joined at step 0')
    records.set('c', { joinStep: 0, leaveStep: Infinity })
    expect(tracker.observe(27, ['a', 'b', 'c', 'd', 'e'])).toEqual([{ kind: 'joined', peerId: 'c', step: 27, members: 5 }])
  })

  it('reports an eviction and a re-admission that both took effect between two observations (the list is the same)', () => {
    // a member that adopts the coordinator's memberships sees one where the killed member is back
    // at the very step it was evicted at: joinStep and leaveStep as before the eviction
    const { coordinator, adopt, tracker } = adoptingMember()
    let view = adopt()
    tracker.observe(12, view.membersAt(12))
    coordinator.leave('k', 14)
    expect(coordinator.join('k', 14)).toBe(true)
    view = adopt()
    expect(view.record('k')).toMatchObject({ joinStep: 0, leaveStep: Infinity, readmissions: 1, previousLeaveStep: 14 })
    expect(tracker.observe(15, view.membersAt(15))).toEqual([
      { kind: 'evicted', peerId: 'k', step: 14, members: 2 },
      { kind: 'joined', peerId: 'k', step: 14, members: 3 }
    ])
    expect(tracker.observe(16, view.membersAt(16))).toEqual([])
    // evicted at 20, back from 22: the same, at the steps the record gives
    coordinator.leave('k', 20)
    coordinator.join('k', 22)
    view = adopt()
    expect(tracker.observe(23, view.membersAt(23))).toEqual([
      { kind: 'evicted', peerId: 'k', step: 20, members: 2 },
      { kind: 'joined', peerId: 'k', step: 22, members: 3 }
    ])
    // a membership without a re-admission keeps its snapshot's shape
    expect(Object.keys(adopt().toSnapshot().members.find((m) => m.peerId === 'a')!)).toEqual(['peerId', 'joinStep', 'leaveStep'])
  })

  it('reports a re-admission at the step of the eviction this peer saw, when the admission came after it', () => {
    // rejoin.test.ts: a killed member evicted at 14, where the job waits for three gradients, and
    // admitted again at 14. A member that saw the eviction at 14 and the admission only in a later
    // report printed 'joined at step 15', where the joiner and the admitting host said 14
    const { coordinator, adopt, tracker, evicted } = memberThatSawEviction(14, 14, 'membership')
    expect(evicted).toEqual([{ kind: 'evicted', peerId: 'k', step: 14, members: 2 }])
    coordinator.join('k', 14, true)
    let view = adopt()
    // step 14's report lists k, but a report of the step the change was seen at adds no member
    expect(tracker.observe(14, view.membersAt(14))).toEqual([])
    expect(tracker.observe(15, view.membersAt(15))).toEqual([{ kind: 'joined', peerId: 'k', step: 14, members: 3 }])
    // a member admitted for the first time at the step of the last observation joined there too
    coordinator.join('n', 16)
    tracker.observe(16, view.membersAt(16), 'membership')
    view = adopt()
    expect(tracker.observe(17, view.membersAt(17))).toEqual([{ kind: 'joined', peerId: 'n', step: 16, members: 4 }])
  })

  it('reports a re-admission at its recorded step when this peer learned of it only after observing later steps', () => {
    // the host admits k again at 24, but this member adopts that membership only after it has
    // observed step 25 without k: it printed 'joined at step 25', the joiner and the host 24
    const { coordinator, adopt, tracker, evicted } = memberThatSawEviction(14, 15, 'report')
    expect(evicted).toEqual([{ kind: 'evicted', peerId: 'k', step: 14, members: 2 }])
    tracker.observe(25, adopt().membersAt(25), 'membership')
    coordinator.join('k', 24, true)
    let view = adopt()
    expect(tracker.observe(26, view.membersAt(26))).toEqual([{ kind: 'joined', peerId: 'k', step: 24, members: 3 }])
    // a join recorded before the step its leave was reported at is another membership's
    coordinator.leave('k', 30)
    view = adopt()
    expect(tracker.observe(31, view.membersAt(31))).toEqual([{ kind: 'evicted', peerId: 'k', step: 30, members: 2 }])
    coordinator.join('k', 33)
    view = adopt()
    const stale = createMembershipChangeTracker(() => undefined, () => ({ joinStep: 28, leaveStep: Infinity, readmissions: 2, previousLeaveStep: 28 }))
    stale.observe(29, ['a', 'b', 'k'])
    stale.observe(31, ['a', 'b'])
    expect(stale.observe(34, ['a', 'b', 'k'])).toEqual([{ kind: 'joined', peerId: 'k', step: 34, members: 3 }])
    expect(tracker.observe(34, view.membersAt(34))).toEqual([{ kind: 'joined', peerId: 'k', step: 33, members: 3 }])
  })

  it('reports a join from the first step report that lists the member, at the step its record settled on', () => {
    // rejoin.test.ts: while the job waited below its aggregation floor, a member that printed the
    // first membership version it saw said 19 where the joiner and the host said 20; modelled here
    // as an admission for 19 that the coordinator then moves to 20
    const { coordinator, adopt, tracker, evicted } = memberThatSawEviction(19, 19, 'membership')
    expect(evicted).toEqual([{ kind: 'evicted', peerId: 'k', step: 19, members: 2 }])
    coordinator.join('k', 19, true)
    let view = adopt()
    // listed by the membership at 19, not reported yet
    expect(view.membersAt(19)).toContain('k')
    expect(tracker.observe(19, view.membersAt(19), 'membership')).toEqual([])
    // moved to 20 before step 19 ran; step 19's report does not list it, step 20's does
    coordinator.leave('k', 19)
    coordinator.join('k', 20, true)
    view = adopt()
    expect(tracker.observe(19, view.membersAt(19))).toEqual([])
    expect(tracker.observe(20, view.membersAt(20))).toEqual([{ kind: 'joined', peerId: 'k', step: 20, members: 3 }])
    // a re-admission between two membership observations (the same list) waits for a report too
    coordinator.leave('k', 25)
    coordinator.join('k', 25, true)
    view = adopt()
    expect(tracker.observe(25, view.membersAt(25), 'membership')).toEqual([])
    expect(tracker.observe(26, view.membersAt(26))).toEqual([
      { kind: 'evicted', peerId: 'k', step: 25, members: 2 },
      { kind: 'joined', peerId: 'k', step: 25, members: 3 }
    ])
  })
})
