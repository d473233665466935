/**
 * What `p2pmld start` prints while its daemon trains: progress within the epoch (loss,
 * samples/s, epoch length, ETA), one line per epoch (with its duration), membership changes
 * (joined, left, evicted) and the result. Epochs count from 1, as in the logs.
 */
import { minimumPeersFor, type JobConfig } from '../../config/job-config.js'
import type { JobSessionEvents } from '../../daemon/peer/job-session.js'
import { formatDuration, formatEpochMetrics } from './format.js'
import { createProgressReporter, type ProgressOptions, type ProgressReporter } from './progress.js'

export interface DaemonConsole {
  readonly events: JobSessionEvents
  /** a line between progress redraws */
  line(text: string): void
}

/**
 * `job()` is the daemon's current job config (a joining peer learns it from the others), used
 * for the epoch count and the per-peer batch size; `selfId()` the daemon's peer id, once known.
 */
export function createDaemonConsole(stream: NodeJS.WriteStream, job: () => JobConfig | undefined, options: ProgressOptions & { readonly selfId?: () => string | undefined } = {}): DaemonConsole {
  const now = options.now ?? (() => performance.now())
  let progress: ProgressReporter | undefined
  let epochs = 0
  /**
   * the epoch in progress and when its first step started (EpochRecord.durationMs is validation
   * only); `partial`: this peer's first step in it was not the epoch's first (it joined, or
   * resumed from a checkpoint, mid-epoch)
   */
  let current: { epoch: number, startedAt: number, partial: boolean } | undefined
  /**
   * whether the members training with this peer were printed: at its first step, and again after
   * it left or was evicted, or for the next job (a host waiting for minPeers printed nothing about who came)
   */
  let membersShown = false
  /** steps this daemon ran in the current job: none when it was admitted as the job ended, or restarted after its end (it took the final state) */
  let stepsRun = 0
  const reporter = (): ProgressReporter => {
    const total = job()?.epochs ?? 0
    if (progress === undefined || total !== epochs) {
      progress?.done()
      epochs = total
      progress = createProgressReporter(stream, total, options)
    }
    return progress
  }
  const line = (text: string): void => {
    if (progress !== undefined) progress.line(text)
    else stream.write(text + '\n')
  }
  return {
    line,
    events: {
      onStep: (r) => {
        stepsRun++
        if (!membersShown) {
          membersShown = true
          line(`training at step ${r.step} with ${describeMembers(r.members, options.selfId?.())}`)
        }
        if (current?.epoch !== r.epoch) current = { epoch: r.epoch, startedAt: now() - r.stepMs, partial: r.stepInEpoch > 1 }
        reporter().step(r.epoch, r.stepInEpoch, r.stepsInEpoch, r.loss, r.samples)
      },
      onPaused: (step) => {
        // the rate and the ETA must not count the pause as a step's time
        reporter().pause()
        line(`job paused before step ${step}; p2pmld job resume goes on`)
      },
      onResumed: (step) => line(`job resumed at step ${step}`),
      onEpoch: (e) => {
        // an epoch this peer joined midway: its part of it is not the epoch's time (a reviewer's
        // re-joined host printed 'epoch 7/20 done in 142 ms')
        const took = current?.epoch !== e.epoch ? '' : current.partial ? ' (joined or resumed during it)' : ` in ${formatDuration(now() - current.startedAt)}`
        // the job's count, not the progress line's: a resumed host can close an epoch before its
        // first step (it printed 'epoch 48/0 done')
        line(`epoch ${e.epoch + 1}/${job()?.epochs ?? epochs} done${took}: ${formatEpochMetrics(e, ', ')}`)
      },
      onMembershipChange: (c) => {
        const what = c.kind === 'joined' ? 'joined' : c.kind === 'left' ? 'left' : `was evicted (it missed too many ${job()?.mode === 'async' ? 'averaging rounds' : 'steps'})`
        // its own eviction and re-admission as others see them (a peer id of its own read as another's)
        const who = c.peerId === options.selfId?.() ? 'this peer' : `peer ${c.peerId}`
        // too few left for the rule: nothing steps until a peer joins (a walk's job sat there, saying nothing)
        const config = job()
        const needed = config === undefined ? undefined : minimumPeersFor(config.aggregation.rule, config.aggregation.f)
        const stalled = c.kind !== 'joined' && needed !== undefined && c.members < needed
          ? `, fewer than the aggregation rule needs (${needed}): the job waits for a peer to join (p2pmld start --bootstrap with a member's address)`
          : ''
        line(`${who} ${what} at step ${c.step}: ${c.members} member${c.members === 1 ? '' : 's'}${stalled}`)
      },
      onLeft: (step, others, needed, beforeStart = false) => {
        membersShown = false
        progress?.done()
        // before the start nobody carries anything on: the host waits for its minPeers without it
        if (beforeStart) return line(`left the job before its start: its host waits for ${job()?.minPeers ?? 'its'} members (minPeers) without this one`)
        const members = others === 1 ? '1 other member' : `${others} other members`
        line(`left the job at step ${step}${others === 0
          ? ' (no other member: its checkpoint resumes it)'
          : others < needed ? `: its ${members} ${others === 1 ? 'waits' : 'wait'} for another to join (the aggregation rule needs ${needed})` : `: ${members} ${others === 1 ? 'carries' : 'carry'} it on`}`)
      },
      onEvicted: (step) => {
        membersShown = false
        line(`this peer was evicted from the job${step > 0 ? ` at step ${step}` : ''}: re-joining`)
      },
      onFinished: (r) => {
        progress?.done()
        // the next job (job submit, auto-join) starts afresh: its members, its epochs, its pace
        // (a daemon's second job never printed 'training at step 0 with ...')
        progress = undefined
        current = undefined
        membersShown = false
        // the last validation, when it ran on the final parameters
        const last = r.history.at(-1)
        const validation = last?.step === r.step ? `, validation accuracy ${(last.validationAccuracy * 100).toFixed(2)} %` : ''
        // a peer admitted as the job ended (or restarted after it) read like one that had trained to its end
        const took = stepsRun === 0 ? ' (its final state, taken from the members: this daemon ran no step of it)' : ''
        stepsRun = 0
        line(`job finished (${r.reason}) at step ${r.step}: test accuracy ${(r.test.accuracy * 100).toFixed(2)} %${validation}, digest ${r.digest}${took}`)
      }
    }
  }
}

/** MEMBERS_LISTED at most, this peer first: '3 members: this peer, 12D3KooW..., 12D3KooW...' */
const MEMBERS_LISTED = 8
function describeMembers(members: readonly string[], selfId: string | undefined): string {
  const others = members.filter((m) => m !== selfId)
  const named = [...(others.length < members.length ? ['this peer'] : []), ...others].slice(0, MEMBERS_LISTED)
  const more = members.length - named.length
  return `${members.length} member${members.length === 1 ? '' : 's'}: ${named.join(', ')}${more > 0 ? ` and ${more} more` : ''}`
}
