/**
 * Which test-only Byzantine attack (config/job-config.ts AttackConfig) this peer runs: the job's,
 * when it names this peer by a name an in-process harness gave it (the demo's and the tests'
 * peer-N). Never by its peer id: a daemon started with `p2pmld start` has no such name, so a job's
 * submitter cannot make the daemons that join it send poisoned gradients.
 */
import type { AttackConfig } from '../../config/job-config.js'
import type { Logger } from '../logger.js'

/** the job's attack names this peer by its peer id (not by a harness name), which it ignores */
export function attackIgnored(attack: AttackConfig | undefined, selfNames: readonly string[], selfId: string): boolean {
  return attack !== undefined && attack.peers.includes(selfId) && !attack.peers.some((p) => selfNames.includes(p))
}

/**
 * The attack this peer runs (undefined: none), logged at warn either way it concerns this peer:
 * run, or named by `selfId` and ignored.
 */
export function attackOfThisPeer(attack: AttackConfig | undefined, selfNames: readonly string[], selfId: string, log: Logger): AttackConfig | undefined {
  if (attack === undefined) return undefined
  if (attack.peers.some((p) => selfNames.includes(p))) {
    log.warn({ attack }, 'this peer runs a test-only Byzantine attack')
    return attack
  }
  if (attackIgnored(attack, selfNames, selfId)) {
    log.warn({ attack: attack.kind }, 'the job names this peer in a test-only attack: ignored (only the demo\'s and the tests\' in-process peers run attacks); this peer stays honest')
  }
  return undefined
}
