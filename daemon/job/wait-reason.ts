/**
 * Why a job does not step now, as `status` shows it (JobRunner.waitingFor): before the start,
 * what the start waits for; while paused, the pause; at a step, the step's own reason once its
 * deadline passed short (the trainer's onWaiting, step-quorum.ts describeShortRound), and before
 * that, a wait past LIVE_WAIT_SHOWN_AFTER_MS with who it waits for and when the deadline lets the
 * step go on without them (every step waits a little: shorter waits are not named).
 */
import type { PendingCollect } from '../membership/gradient-collector.js'
import type { RunnerState } from './job-types.js'

/** a wait shorter than this (ms) is an ordinary step's and not shown */
export const LIVE_WAIT_SHOWN_AFTER_MS = 2000

export interface WaitReason {
  readonly reason: string
  /** fewer live members than the rule needs: the job waits for a join */
  readonly belowFloor: boolean
  /** no step completes until the membership changes or a cut link returns */
  readonly stalled: boolean
}

export interface WaitReasonOptions {
  /** what the start waits for (minPeers members, or a resumed job's members) */
  startWaitReason(): string
  /** the collect the step loop is in, if any (reduce-scatter's results first) */
  pendingCollect(): PendingCollect | undefined
  /** what a step waits for: 'gradients', or in async mode 'parameter changes' (only averaging rounds wait) */
  readonly awaited: 'gradients' | 'parameter changes'
  /** inputs the aggregation rule needs a step (2f+1 for the robust rules), this peer's own included */
  readonly minInputs: number
  /** the step a job-wide pause holds the job before, once decided and not yet in force (job-control.ts) */
  pauseDecided?(): number | undefined
}

export interface WaitReasons {
  /** the trainer's onWaiting: the step's reason once its deadline passed short; undefined once it goes on */
  onWaiting(reason: string | undefined, stall?: 'below-floor' | 'cut-off'): void
  /** the step's own reason (onWaiting), if any */
  step(): WaitReason | undefined
  /** JobRunner.waitingFor in `state` (JobRunner.state) before `step` */
  current(state: RunnerState, step: number): WaitReason | undefined
}

export function createWaitReasons(options: WaitReasonOptions): WaitReasons {
  let atStep: WaitReason | undefined
  const reason = (text: string): WaitReason => ({ reason: text, belowFloor: false, stalled: false })
  const currentAt = (state: RunnerState, step: number): WaitReason | undefined => {
    if (state === 'waiting') return reason(options.startWaitReason())
    if (state === 'paused') return reason(`paused job-wide before step ${step}: p2pmld job resume (on any member) goes on`)
    // below the rule's floor nothing happens until someone joins: say how
    if (atStep?.belowFloor === true) return { ...atStep, reason: `${atStep.reason}: it goes on once another peer joins (p2pmld start --bootstrap with a member's address)` }
    if (atStep !== undefined || state !== 'training') return atStep
    const live = describeLiveWait(options.pendingCollect(), performance.now(), options.awaited, options.minInputs)
    return live === undefined ? undefined : reason(live)
  }
  return {
    onWaiting(text, stall) {
      atStep = text === undefined ? undefined : { reason: text, belowFloor: stall === 'below-floor', stalled: stall !== undefined }
    },
    step: () => atStep,
    current(state, step) {
      const now = currentAt(state, step)
      // a pause decided while a step waits holds the job only once that step completes: `job
      // pause` answered 'paused at step N' while status showed the wait alone
      const pause = state === 'training' ? options.pauseDecided?.() : undefined
      return now === undefined || pause === undefined ? now : { ...now, reason: `${now.reason}; the job-wide pause (before step ${Math.max(pause, step + 1)}) holds once this step completes` }
    }
  }
}

/**
 * `waiting 12 s for the gradients of 12D3KooW...: the step goes on without it in ~18 s (the step
 * deadline)`, or, when those that arrived and this peer's own are fewer than the rule's
 * `minInputs`, what the deadline then does; undefined when nobody is missing or the wait is short.
 * `now` and the collect's times are performance.now() ms.
 */
export function describeLiveWait(pending: PendingCollect | undefined, now: number, awaited: WaitReasonOptions['awaited'], minInputs: number): string | undefined {
  if (pending === undefined || pending.missing.length === 0 || now - pending.since < LIVE_WAIT_SHOWN_AFTER_MS) return undefined
  const waited = Math.floor((now - pending.since) / 1000)
  const left = Math.max(0, Math.ceil((pending.deadline - now) / 1000))
  const them = pending.missing.length === 1 ? 'it' : 'them'
  const head = `waiting ${waited} s for the ${awaited} of ${pending.missing.join(', ')}`
  if (pending.received + 1 >= minInputs) return `${head}: the step goes on without ${them} in ~${left} s (the step deadline)`
  return awaited === 'gradients'
    ? `${head}: the step cannot go on without ${them} (the rule needs ${minInputs} ${awaited}); past the deadline (~${left} s) it waits on until ${pending.missing.length === 1 ? 'it sends or is' : 'they send or are'} evicted`
    : `${head}: without ${them} the averaging round is skipped at the deadline (~${left} s; the rule needs ${minInputs} ${awaited})`
}
