/**
 * Asking the coordinator for its membership when a newer one is refused. A member adopts
 * announcements only from the coordinator as it sees it (JobMembership.mayAnnounce), so a member
 * that missed one change can refuse every later one: a restarted daemon tells the member it asks
 * for the job that its previous process (the coordinator, killed) left, that member takes over and
 * announces, and a third member, still counting the old process (alive again under the same peer
 * id, so never suspected), refused each announcement. When the new coordinator died too, nobody
 * was left whom both would let decide, and the job waited for good (test/e2e/coordinator-restart).
 * The refusing member now asks the peer it does count as coordinator for the membership that peer
 * holds (the job protocol's `info`) and adopts it if newer: the trust its own announcement would
 * get, no more (a member that announces a forged membership makes the others ask their coordinator,
 * whose answer is not newer).
 */
import { JobInfoSchema } from '../../protocols/job/job-protocol.js'
import { abortableSleep } from '../job/abortable-sleep.js'
import type { JobRunner } from '../job/job-runner.js'
import type { Logger } from '../logger.js'
import type { JobWire } from './session-core.js'

/** at most one question to the coordinator this often (ms): a member repeating announcements cannot make this peer ask more */
export const MEMBERSHIP_PULL_INTERVAL_MS = 2_000
/**
 * questions after one refusal, while the coordinator's membership is not as new as the one refused
 * (it may still be joining, or not have adopted it yet; the announcer may have died meanwhile and
 * announce nothing more): ~30 s
 */
const PULL_TRIES = 15
/** a question to the coordinator ends after this long (ms) */
const PULL_TIMEOUT_MS = 5_000

export interface MembershipPullOptions {
  readonly jobId: string
  readonly log: Logger
  runner(): JobRunner | undefined
  wire(): Pick<JobWire, 'request'> | undefined
  /** between questions (default MEMBERSHIP_PULL_INTERVAL_MS; tests) */
  readonly intervalMs?: number
}

export interface MembershipPull {
  /** `from` announced membership `version`, newer than this peer's, and was refused: ask the coordinator until this peer's is as new (fire and forget) */
  refusedNewer(from: string, version: number): void
  /** the questions stop; later calls do nothing */
  stop(): void
  /** resolves once the questions in progress, if any, ended (tests) */
  settled(): Promise<void>
}

export function createMembershipPull(options: MembershipPullOptions): MembershipPull {
  const { jobId, log } = options
  const intervalMs = options.intervalMs ?? MEMBERSHIP_PULL_INTERVAL_MS
  const abort = new AbortController()
  /** the newest version refused, and by whom */
  let wanted: { version: number, from: string } | undefined
  let triesLeft = 0
  let asking: Promise<void> | undefined

  /** one question; true when this peer's membership is now at least as new as the one refused */
  const askOnce = async (): Promise<boolean> => {
    const runner = options.runner()
    const wire = options.wire()
    if (runner === undefined || wire === undefined || wanted === undefined) return true
    if (runner.membershipVersion() >= wanted.version) return true
    const coordinator = runner.membership().coordinatorAt(runner.progress().step)
    // this peer coordinates (its own view decides), or knows no coordinator
    if (coordinator === undefined || runner.isCoordinator()) return true
    try {
      const info = await wire.request(coordinator, { v: 1, type: 'info' }, JobInfoSchema, { timeoutMs: PULL_TIMEOUT_MS, signal: abort.signal })
      // still the peer this one lets decide (the view may have changed while it asked)
      if (abort.signal.aborted || info.jobId !== jobId || !runner.mayDecideForJob(coordinator)) return false
      const before = runner.membershipVersion()
      if (runner.adoptMembership(info.membership)) {
        log.info({ coordinator, announcedBy: wanted.from, announced: wanted.version, was: before, adopted: info.membership.version }, 'a peer that is not the coordinator announced a newer membership: adopted the one the coordinator holds')
      }
    } catch (error) {
      if (!abort.signal.aborted) log.debug({ err: error, coordinator }, 'could not ask the coordinator for its membership')
    }
    return runner.membershipVersion() >= wanted.version
  }

  const askUntilCurrent = async (): Promise<void> => {
    while (!abort.signal.aborted && triesLeft > 0) {
      triesLeft--
      if (await askOnce()) return
      await abortableSleep(intervalMs, abort.signal)
    }
  }

  return {
    refusedNewer(from, version) {
      if (abort.signal.aborted) return
      if (wanted === undefined || version > wanted.version) wanted = { version, from }
      triesLeft = PULL_TRIES
      asking ??= askUntilCurrent().finally(() => {
        asking = undefined
        wanted = undefined
      })
    },
    stop() {
      abort.abort()
    },
    settled: async () => { await asking }
  }
}
