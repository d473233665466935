/**
 * A runner's divergence repair, wired once: state-repair.ts (adopt a state f+1 members vouch for:
 * a divergence, a catch-up, the end-of-job agreement) falling back to state-reconciliation.ts (no
 * digest has f+1 holders: a coordinate-wise robust merge of the members' states). Both read the
 * digests and senders the step's gradients carried, and both replace this peer's state through
 * `adopt`.
 */
import type { GradientCollector } from '../membership/gradient-collector.js'
import type { InboundGradient } from '../training/sync-trainer.js'
import type { JobNetwork, JobSnapshot } from './job-types.js'
import type { JobMembership } from './job-membership.js'
import { createStateReconciliation, type StateReconciliation } from './state-reconciliation.js'
import { createStateRepair, type StateRepair, type StateRepairOptions } from './state-repair.js'

export interface DivergenceRepairOptions extends Pick<StateRepairOptions, 'selfId' | 'log' | 'f' | 'laterStepVouches' | 'deadlineMs' | 'signal' | 'step' | 'params' | 'adopt'> {
  readonly network: Pick<JobNetwork, 'fetchSnapshot' | 'queryDigest'>
  readonly membership: JobMembership
  /** the job's inbound gradients (their senders and digests by wire tag) */
  readonly collector: GradientCollector<InboundGradient>
  /** the wire tag of step t's gradient (ModePolicy.wireTag: 2t in async mode) */
  wireTag(step: number): number
  /** this peer's state now (JobRunner.currentSnapshot) */
  own(): JobSnapshot
  /** answer the state requests already waiting for this peer's current step (before reconciling it) */
  serveWaiting(): void
}

export interface DivergenceRepair {
  readonly repair: StateRepair
  readonly reconciliation: StateReconciliation
}

export function createDivergenceRepair(options: DivergenceRepairOptions): DivergenceRepair {
  const { selfId, log, f, collector, membership } = options
  const reconciliation = createStateReconciliation({
    selfId,
    f,
    log,
    fetchSnapshot: async (peer, minStep) => await options.network.fetchSnapshot(peer, minStep),
    membersAt: (step) => membership.view().membersAt(step),
    sentGradientAt: (step) => new Set(collector.receivedAt(options.wireTag(step)).keys()),
    deadlineMs: options.deadlineMs,
    signal: options.signal,
    own: options.own,
    adopt: options.adopt
  })
  const repair = createStateRepair({
    selfId,
    network: options.network,
    membership,
    log,
    f,
    ...(options.laterStepVouches === undefined ? {} : { laterStepVouches: options.laterStepVouches }),
    // what the members' gradients carried for `step`: a sample between anchor steps, which never
    // equals a state's full digest (it hashes the step and the count too), so it vouches for nothing
    knownDigests: (step) => new Map([...collector.receivedAt(options.wireTag(step))].map(([sender, g]) => [sender, g.digest])),
    deadlineMs: options.deadlineMs,
    signal: options.signal,
    step: options.step,
    params: options.params,
    adopt: options.adopt,
    reconcile: async (step) => {
      // the others ask for this peer's state at this step: answer those already waiting for it
      options.serveWaiting()
      return await reconciliation.reconcile(step)
    }
  })
  return { repair, reconciliation }
}
