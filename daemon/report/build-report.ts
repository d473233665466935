/**
 * Assembles a run report (report-schema.ts) from what a peer knows about its job: the runner's
 * config, progress, history, membership and stage figures, the recorder's epoch marks, the
 * session's traffic and announced leaves. Pure: the callers gather the inputs.
 */
import type { JobConfig } from '../../config/job-config.js'
import type { JobResult } from '../job/job-runner.js'
import { MembershipView, type MembershipSnapshot } from '../membership/membership-view.js'
import type { StageSummary } from '../metrics/stage-metrics.js'
import type { EpochRecord } from '../training/training-state.js'
import type { EpochMark } from './report-recorder.js'
import { RUN_REPORT_FORMAT, RUN_REPORT_VERSION, type RunReport } from './report-schema.js'

export interface RunReportInputs {
  readonly source: RunReport['source']
  readonly peerId: string
  readonly peerName?: string
  readonly jobId?: string
  readonly config: JobConfig
  readonly state: string
  readonly progress: { readonly step: number, readonly epoch: number, readonly lr: number }
  readonly parameterCount?: number
  readonly trainSamples?: number
  readonly result?: JobResult
  readonly history: readonly EpochRecord[]
  readonly epochMarks?: ReadonlyMap<number, EpochMark>
  readonly membership?: { readonly version: number, readonly snapshot: MembershipSnapshot }
  /** clean leaves this peer heard announced: peer -> effective step */
  readonly leaves?: ReadonlyMap<string, number>
  readonly stages: readonly StageSummary[]
  readonly network?: { readonly bytesSent: number, readonly bytesReceived: number, readonly messagesSent: number, readonly messagesReceived: number }
  readonly bytesByPeer?: ReadonlyArray<{ readonly peer: string, readonly bytesSent: number, readonly bytesReceived: number }>
  readonly lastStep?: { readonly digest: string, readonly peerDigests: ReadonlyMap<string, string> }
  readonly wallMs?: number
  readonly now?: Date
}

const finiteOrNull = (x: number): number | null => Number.isFinite(x) ? x : null

export function buildRunReport(inputs: RunReportInputs): RunReport {
  const marks = inputs.epochMarks ?? new Map<number, EpochMark>()
  const result = inputs.result
  const lastStepIndex = Math.max(0, (result?.step ?? inputs.progress.step) - 1)
  const ownDigest = result?.digest ?? inputs.lastStep?.digest ?? null
  const peerDigests = Object.fromEntries([...(inputs.lastStep?.peerDigests ?? new Map<string, string>())].sort(([a], [b]) => a.localeCompare(b)))
  const lastOwn = inputs.lastStep?.digest
  return {
    format: RUN_REPORT_FORMAT,
    version: RUN_REPORT_VERSION,
    generatedAt: (inputs.now ?? new Date()).toISOString(),
    source: inputs.source,
    peer: { id: inputs.peerId, name: inputs.peerName ?? null },
    job: {
      id: inputs.jobId ?? inputs.config.id ?? null,
      config: JSON.parse(JSON.stringify(inputs.config)) as Record<string, unknown>,
      state: inputs.state,
      parameterCount: inputs.parameterCount ?? null,
      trainSamples: inputs.trainSamples ?? null,
      step: inputs.progress.step,
      epoch: inputs.progress.epoch,
      lr: finiteOrNull(inputs.progress.lr)
    },
    result: result === undefined
      ? null
      : { reason: result.reason, step: result.step, epoch: result.epoch, testAccuracy: result.test.accuracy, testLoss: finiteOrNull(result.test.loss), digest: result.digest },
    epochs: inputs.history.map((e) => {
      const mark = marks.get(e.epoch)
      return {
        epoch: e.epoch,
        step: e.step,
        trainLoss: finiteOrNull(e.trainLoss),
        validationLoss: finiteOrNull(e.validationLoss),
        validationAccuracy: e.validationAccuracy,
        lr: e.lr,
        durationMs: e.durationMs,
        atMs: mark?.atMs ?? null,
        digest: mark?.digest ?? null,
        members: mark?.members ?? null
      }
    }),
    membership: membershipSection(inputs.membership, inputs.leaves ?? new Map(), lastStepIndex),
    stages: inputs.stages.map((s) => ({ ...s })),
    network: {
      bytesSent: Math.round(inputs.network?.bytesSent ?? 0),
      bytesReceived: Math.round(inputs.network?.bytesReceived ?? 0),
      messagesSent: inputs.network?.messagesSent ?? 0,
      messagesReceived: inputs.network?.messagesReceived ?? 0,
      byPeer: [...(inputs.bytesByPeer ?? [])].sort((a, b) => a.peer.localeCompare(b.peer)).map((p) => ({ ...p }))
    },
    digests: {
      own: ownDigest,
      lastStep: lastOwn ?? null,
      peers: peerDigests,
      agree: lastOwn === undefined || Object.keys(peerDigests).length === 0 ? null : Object.values(peerDigests).every((d) => d === lastOwn)
    },
    wallMs: inputs.wallMs ?? null
  }
}

function membershipSection(membership: RunReportInputs['membership'], leaves: ReadonlyMap<string, number>, lastStep: number): RunReport['membership'] {
  if (membership === undefined) return { version: 0, members: [], timeline: [], joins: [], evictions: [], leaves: [] }
  const view = MembershipView.fromSnapshot(membership.snapshot)
  const members = [...membership.snapshot.members].sort((a, b) => a.joinStep - b.joinStep || a.peerId.localeCompare(b.peerId)).map((m) => ({
    peerId: m.peerId,
    joinStep: m.joinStep,
    leaveStep: m.leaveStep,
    exit: m.leaveStep === null ? null : leaves.has(m.peerId) ? 'left' as const : 'evicted' as const
  }))
  // a member admitted again after it left or was evicted: its record holds the latest membership,
  // and the step the one before ended at (a re-admission at that very step keeps the first join step)
  const earlier = membership.snapshot.members.flatMap((m) => m.previousLeaveStep === undefined ? [] : [{
    peerId: m.peerId,
    step: m.previousLeaveStep,
    exit: leaves.get(m.peerId) === m.previousLeaveStep ? 'left' as const : 'evicted' as const,
    rejoinStep: Math.max(m.joinStep, m.previousLeaveStep)
  }])
  const changes = new Set<number>([0, lastStep])
  for (const m of members) {
    changes.add(m.joinStep)
    if (m.leaveStep !== null) changes.add(m.leaveStep)
  }
  for (const e of earlier) changes.add(e.step)
  const timeline = [...changes].filter((s) => s <= Math.max(lastStep, 0)).sort((a, b) => a - b).map((step) => ({ step, members: view.membersAt(step).length }))
  const byStep = (a: { step: number, peerId: string }, b: { step: number, peerId: string }): number => a.step - b.step || a.peerId.localeCompare(b.peerId)
  return {
    version: membership.version,
    members,
    timeline,
    joins: [...members.map((m) => ({ peerId: m.peerId, step: m.joinStep })), ...earlier.filter((e) => e.rejoinStep === e.step).map((e) => ({ peerId: e.peerId, step: e.step }))].sort(byStep),
    evictions: [...members.filter((m) => m.exit === 'evicted').map((m) => ({ peerId: m.peerId, step: m.leaveStep as number })), ...earlier.filter((e) => e.exit === 'evicted')].map(({ peerId, step }) => ({ peerId, step })).sort(byStep),
    leaves: [...members.filter((m) => m.exit === 'left').map((m) => ({ peerId: m.peerId, step: m.leaveStep as number })), ...earlier.filter((e) => e.exit === 'left')].map(({ peerId, step }) => ({ peerId, step })).sort(byStep)
  }
}
