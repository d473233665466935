/**
 * Job-wide pause and resume as one peer sees them. Any member may ask (`request`); the
 * coordinator decides (`decide`): a pause takes effect at an explicit step, MEMBERSHIP_MARGIN
 * steps ahead (as membership changes do), so every member stops before the same step and their
 * states stay identical; a resume releases that step. Decisions carry a sequence number, are
 * announced on the job's membership topic and repeated by the coordinator, and a peer adopts any
 * decision newer than its own, so a member that missed one (or a new coordinator) catches up.
 * Without a network (a local run) a request is decided on the spot.
 */
import type { ControlDecision, JobControlAction } from '../../protocols/job/job-protocol.js'
import type { Logger } from '../logger.js'
import { MEMBERSHIP_MARGIN } from './job-membership.js'

/** how often the coordinator repeats its latest decision */
const REPEAT_EVERY_MS = 1000

export interface JobControlNetwork {
  /** announce a decision to every member (gossip) */
  announceControl?(decision: ControlDecision): Promise<void>
  /** ask the coordinator to decide */
  requestControl?(coordinator: string, action: JobControlAction): Promise<ControlDecision>
}

export interface JobControlOptions {
  readonly selfId: string
  readonly log: Logger
  readonly network: JobControlNetwork
  /** the step the runner is at */
  step(): number
  /** step 0 has not started yet (the job waits for members) */
  waitingForStart(): boolean
  isCoordinator(): boolean
  /** the member that decides, if known */
  coordinator(): string | undefined
  /** async (asyncChangeStep): the step a pause decided now takes effect at, given the earliest the news allows; absent: that step */
  changeStep?(earliest: number): number
}

export interface JobControl {
  /** pause or resume the whole job: decided here if this peer coordinates, else by the coordinator */
  request(action: JobControlAction): Promise<ControlDecision>
  /** coordinator: decide on a member's request (an already decided action returns that decision) */
  decide(action: JobControlAction): ControlDecision
  /** a decision from the coordinator; returns whether it was newer than ours */
  adopt(decision: ControlDecision): boolean
  /**
   * A host resuming from a state that recorded `saved` (SnapshotMeta.control): it holds that
   * decision again, seq and all, as if announced (a pause stays in force; the members still
   * running hold the same seq, so the next decision, seq + 1, is news to every member).
   */
  restore(saved: ControlDecision): void
  latest(): ControlDecision | undefined
  /** the job is paused before `step` */
  pausedAt(step: number): boolean
  /** the step a decided pause holds the job before, while the latest decision is a pause */
  pendingPause(): number | undefined
  /** resolves once `step` may run (no pause holds it) or the signal aborts */
  waitUntilRunnable(step: number, signal: AbortSignal): Promise<void>
  /**
   * waitUntilRunnable, woken every 500 ms to check `stillMember`: resolves once `step` may run,
   * the signal aborts or this peer is no longer a member (it waited for a resume of a job it no
   * longer belonged to: the others' pause it had adopted)
   */
  holdWhilePaused(step: number, signal: AbortSignal, stillMember: () => boolean): Promise<void>
  /** start repeating decisions (coordinator only) */
  start(): void
  stop(): void
}

export class NotCoordinatorError extends Error {
  override name = 'NotCoordinatorError'
}

export function createJobControl(options: JobControlOptions): JobControl {
  const { log } = options
  let decision: ControlDecision | undefined
  let changed = Promise.withResolvers<void>()
  let timer: NodeJS.Timeout | undefined

  const set = (next: ControlDecision): void => {
    decision = next
    const waiters = changed
    changed = Promise.withResolvers<void>()
    waiters.resolve()
  }

  const announce = (): void => {
    const d = decision
    if (d === undefined || options.network.announceControl === undefined) return
    options.network.announceControl(d).catch((error: unknown) => {
      log.debug({ err: error }, 'control announcement failed')
    })
  }

  const decide = (action: JobControlAction): ControlDecision => {
    if (decision?.action === action) return decision
    if (action === 'resume' && decision === undefined) return { seq: 0, action, step: options.step() }
    const step = action === 'pause'
      ? (options.waitingForStart() ? 0 : options.changeStep?.(options.step() + MEMBERSHIP_MARGIN) ?? options.step() + MEMBERSHIP_MARGIN)
      : options.step()
    set({ seq: (decision?.seq ?? 0) + 1, action, step })
    log.info({ action, effectiveStep: step, seq: decision!.seq }, action === 'pause' ? 'job pauses before step' : 'job resumes')
    announce()
    return decision!
  }

  const pausedAt = (step: number): boolean => decision?.action === 'pause' && step >= decision.step

  return {
    async request(action) {
      const coordinator = options.coordinator()
      const remote = options.network.requestControl
      if (options.isCoordinator() || coordinator === undefined || coordinator === options.selfId || remote === undefined) return decide(action)
      const answer = await remote(coordinator, action)
      if (answer.seq > 0) this.adopt(answer)
      return answer
    },
    decide(action) {
      if (!options.isCoordinator()) throw new NotCoordinatorError(`not the coordinator: ask ${options.coordinator() ?? 'the coordinator'}`)
      return decide(action)
    },
    adopt(announced) {
      if (decision !== undefined && announced.seq <= decision.seq) return false
      if (announced.action === 'pause' && options.step() > announced.step) {
        // the news came after this peer passed the step (it cannot undo it): pause now; a digest
        // check against the others repairs any difference
        log.warn({ effectiveStep: announced.step, step: options.step() }, 'pause decision arrived after its step: pausing now')
      }
      set(announced)
      log.info({ action: announced.action, effectiveStep: announced.step, seq: announced.seq }, announced.action === 'pause' ? 'job pauses before step' : 'job resumes')
      return true
    },
    restore(saved) {
      if (decision !== undefined && decision.seq >= saved.seq) return
      set(saved)
      if (saved.action === 'pause') log.info({ effectiveStep: saved.step, seq: saved.seq }, 'the job was paused when its state was saved: still paused (p2pmld job resume goes on)')
    },
    latest: () => decision,
    pendingPause: () => decision?.action === 'pause' ? decision.step : undefined,
    pausedAt,
    async holdWhilePaused(step, signal, stillMember) {
      while (pausedAt(step) && !signal.aborted && stillMember()) {
        await this.waitUntilRunnable(step, AbortSignal.any([signal, AbortSignal.timeout(500)]))
      }
    },
    async waitUntilRunnable(step, signal) {
      while (pausedAt(step) && !signal.aborted) {
        const next = changed.promise
        await new Promise<void>((resolve) => {
          const done = (): void => {
            signal.removeEventListener('abort', done)
            resolve()
          }
          signal.addEventListener('abort', done, { once: true })
          void next.then(done)
        })
      }
    },
    start() {
      if (timer !== undefined) return
      timer = setInterval(() => {
        if (options.isCoordinator()) announce()
      }, REPEAT_EVERY_MS)
    },
    stop() {
      if (timer !== undefined) clearInterval(timer)
      timer = undefined
      changed.resolve()
    }
  }
}
