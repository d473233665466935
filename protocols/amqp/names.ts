/**
 * Broker names of one job. Everything a job declares carries its id, so two jobs on one broker
 * never share a queue or an exchange, and a job's names can be listed and deleted at its end.
 *
 *   exchange  p2pmld.job.<job>                 direct; every message of the job goes through it
 *   queue     p2pmld.job.<job>.<peer>.ctl      a peer's control inbox (requests, replies, broadcasts)
 *   queue     p2pmld.job.<job>.<peer>.g.<src>  the latest gradient from `src` to `peer` (max-length 1)
 *   exchange  p2pmld.discovery                 fanout: a peer without a job asks who runs one
 *
 * Queue and exchange names are limited to 255 bytes by AMQP 0-9-1: a 64-byte job id and two
 * 52-character Ed25519 peer ids stay well below.
 */

export const DISCOVERY_EXCHANGE = 'p2pmld.discovery'

export interface JobNames {
  readonly exchange: string
  controlQueue(peer: string): string
  gradientQueue(receiver: string, sender: string): string
  /** every queue name a job member may have used: for the clean-up at the end */
  prefix: string
}

export function jobNames(jobId: string): JobNames {
  const base = `p2pmld.job.${jobId}`
  return {
    exchange: base,
    prefix: `${base}.`,
    controlQueue: (peer) => `${base}.${peer}.ctl`,
    gradientQueue: (receiver, sender) => `${base}.${receiver}.g.${sender}`
  }
}

/** routing key of a gradient from `sender` to `receiver` */
export function gradientKey(receiver: string, sender: string): string {
  return `g.${receiver}.${sender}`
}

/** routing key of control messages addressed to one peer */
export function controlKey(peer: string): string {
  return `c.${peer}`
}

/** routing key of control messages every member receives */
export const BROADCAST_KEY = 'c.all'
