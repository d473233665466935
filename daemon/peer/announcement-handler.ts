/**
 * The membership messages every transport delivers to a job session (membership, leave,
 * pause/resume decision, heartbeat): checked against the schema and the job, the sender's sighting
 * noted, then applied only where the sender may decide for the job (the coordinator, or a live
 * member more senior than it: JobMembership.mayAnnounce). Before this peer has a runner (a joiner
 * fetching its state) each sender's newest membership is kept for the runner to adopt.
 */
import { MembershipAnnouncementSchema, type MembershipAnnouncement } from '../../protocols/job/job-protocol.js'
import type { JobRunner } from '../job/job-runner.js'
import type { EarlyInbox } from './early-inbox.js'
import type { PeerSighting } from './job-session.js'
import type { RejectionLog } from './rejection-log.js'

export interface AnnouncementHandlerOptions {
  readonly jobId: string
  readonly rejections: RejectionLog
  /** when each peer was last heard from (updated here for every valid announcement of this job) */
  readonly sightings: Map<string, PeerSighting>
  /** memberships kept while there is no runner */
  readonly early: EarlyInbox
  /** peers that announced their job finished (filled here) */
  readonly finishedPeers: Set<string>
  runner(): JobRunner | undefined
  /** this session is stopping: the coordinator's view may differ for a moment, expected */
  stopping(): boolean
  /** `from` announced it leaves from `effectiveStep` */
  noteLeave(from: string, effectiveStep: number): void
  /** whether `from` announced a leave (its membership views are then expected to differ) */
  announcedLeave(from: string): boolean
  /** `from` announced membership `version`, newer than this peer's, and was refused (membership-pull.ts asks the coordinator) */
  refusedNewer?(from: string, version: number): void
}

/** what the session did with an announcement: undefined when refused (counted in the rejections) */
export type AnnouncementOutcome = { readonly announcement: MembershipAnnouncement, readonly adopted: boolean } | undefined

/** Returns the handler of one announcement (`message` unparsed, from the wire) sent by `from`. */
export function createAnnouncementHandler(options: AnnouncementHandlerOptions): (from: string, message: unknown) => AnnouncementOutcome {
  const { jobId, rejections, sightings, early } = options
  return (from, message) => {
    const parsed = MembershipAnnouncementSchema.safeParse(message)
    if (!parsed.success) {
      rejections.reject('bad-membership', { from }, `invalid membership message: ${parsed.error.issues[0]?.message}`)
      return undefined
    }
    const announcement = parsed.data
    if (announcement.jobId !== jobId) {
      rejections.reject('job', { from }, `membership message for job ${announcement.jobId}`)
      return undefined
    }
    const sighting = sightings.get(from) ?? { lastSeen: 0, addrs: [] }
    sighting.lastSeen = Date.now()
    sightings.set(from, sighting)
    // a member announces 'finished' once it agreed on the final state (JobRunner's finish)
    if (announcement.type === 'membership' && announcement.phase === 'finished') options.finishedPeers.add(from)
    const runner = options.runner()
    let adopted = false
    switch (announcement.type) {
      case 'membership':
        // only from the coordinator, or a live member more senior than it (JobMembership.mayAnnounce);
        // before this peer has a runner (a joiner fetching its state) each sender's newest is kept,
        // and the runner adopts those of the senders it lets decide when it starts
        if (runner === undefined) {
          early.keepMembership(from, announcement.membership)
          adopted = true
        } else if (runner.mayDecideForJob(from)) {
          runner.adoptMembership(announcement.membership)
          adopted = true
        } else if (announcement.membership.version > runner.membershipVersion()) {
          // expected while members stop (this peer stops, or the sender announced its leave): each
          // takes the leaves in its own order, and who coordinates differs for a moment (a
          // reviewer saw these as warnings in 5 of 6 stops of a whole job); counted still
          rejections.reject('membership-not-coordinator', { from, version: announcement.membership.version },
            `membership (version ${announcement.membership.version}, this peer's ${runner.membershipVersion()}) announced by a peer that is not the coordinator as this peer sees it: not adopted`,
            { expected: options.stopping() || options.announcedLeave(from) })
          if (!options.stopping()) options.refusedNewer?.(from, announcement.membership.version)
        }
        break
      case 'leave':
        options.noteLeave(from, announcement.effectiveStep)
        break
      case 'control':
        // only the coordinator decides for the job (it repeats its decision; a member asking
        // for a pause takes the coordinator's answer directly): as for a membership, not any
        // member, or one could pause the job for good with a decision of its own
        if (runner?.mayDecideForJob(from) === true) runner.control().adopt(announcement.decision)
        else if (runner !== undefined) rejections.reject('control-not-coordinator', { from }, 'pause/resume decision announced by a peer that is not the coordinator as this peer sees it: not adopted')
        break
      case 'heartbeat':
        break
    }
    return { announcement, adopted }
  }
}
