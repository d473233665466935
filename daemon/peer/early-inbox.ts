/**
 * What reaches a joining peer before it has a runner (while it fetches the job's state): the
 * gradients for the steps it will run and each sender's newest membership announcement. The
 * runner takes them when it starts: without the memberships, a change the coordinator announced
 * during the fetch (a second batch of joiners) was lost, and the joiner ran that batch's first
 * step without its members' gradients. Bounded: a peer cannot fill a joiner's memory.
 */
import type { MembershipState } from '../../protocols/job/job-protocol.js'
import type { JobRunner } from '../job/job-runner.js'
import type { InboundGradient } from '../training/sync-trainer.js'

/** inbound gradients kept while a joining peer has no runner yet */
const MAX_EARLY_GRADIENTS = 256
/** senders whose membership announcements are kept while a joining peer has no runner yet */
const MAX_EARLY_MEMBERSHIP_SENDERS = 64

export interface EarlyInbox {
  /** keep a decoded gradient (dropped past MAX_EARLY_GRADIENTS) */
  keepGradient(gradient: InboundGradient): void
  /** keep `from`'s announced membership if newer than the one kept from it (senders past MAX_EARLY_MEMBERSHIP_SENDERS dropped) */
  keepMembership(from: string, membership: MembershipState): void
  /** the runner adopts the memberships of the senders it lets decide for the job; then they are forgotten */
  adoptMemberships(runner: JobRunner): void
  /** the runner is offered the gradients kept; then they are forgotten */
  offerGradients(runner: JobRunner): void
}

export function createEarlyInbox(): EarlyInbox {
  let gradients: InboundGradient[] = []
  let memberships = new Map<string, MembershipState>()
  return {
    keepGradient(gradient) {
      if (gradients.length < MAX_EARLY_GRADIENTS) gradients.push(gradient)
    },
    keepMembership(from, membership) {
      const kept = memberships.get(from)
      if ((kept === undefined && memberships.size < MAX_EARLY_MEMBERSHIP_SENDERS) || (kept !== undefined && membership.version > kept.version)) memberships.set(from, membership)
    },
    adoptMemberships(runner) {
      for (const [from, membership] of memberships) if (runner.mayDecideForJob(from)) runner.adoptMembership(membership)
      memberships = new Map()
    },
    offerGradients(runner) {
      for (const g of gradients) runner.offerGradient(g)
      gradients = []
    }
  }
}
