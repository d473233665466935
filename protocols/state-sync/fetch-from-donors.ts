/**
 * Fetch a job's state from several donors at once: donor i sends range i of n of the floats
 * (snapshot-range.ts), so a joiner's transfer is spread over the members that hold the state and
 * no one member carries it all. Each donor announces its step and the digest of its whole state
 * (stateDigest: parameters and optimizer state); the parts are used only when every donor
 * announces the same step and digest and the reassembled state hashes to it. For a synchronous
 * job only: there every honest member holds the same state at a step.
 *
 * Otherwise the state comes whole from one donor, in order: the first donor named, then the rest.
 * When the donors disagree or the reassembled state does not match (a donor lied), a whole state
 * is taken only if it hashes to a digest that `vouchers` donors announced for its step (f+1: at
 * least one of them honest); with no such digest the fetch fails and the caller retries. When the
 * parts failed for other reasons (a donor left, moved on, or does not serve ranges) the whole state
 * is checked against such a digest if there is one, and taken unchecked from the first donor that
 * serves one if there is none, as a single-donor fetch is.
 */
import type { Libp2p } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { assembleSnapshotRanges, stateDigest, type TrainingSnapshot } from '../snapshot/index.js'
import { fetchSnapshot, fetchSnapshotRange, type FetchedRange, type FetchSnapshotOptions } from './fetch-snapshot.js'
import { StateSyncError } from './state-sync-errors.js'
import { MAX_STATE_RANGES } from './state-sync-messages.js'

export interface FetchFromDonorsOptions extends FetchSnapshotOptions {
  /** donors that must announce a digest before a whole state is checked against it (f+1; capped at the donors asked) */
  readonly vouchers: number
  /** a step of the fetch failed and the next is tried: why, and from whom it fetches next */
  readonly onFallback?: (reason: string, next: string) => void
}

export interface DonorFetch {
  readonly snapshot: TrainingSnapshot
  /** the donors whose bytes make up the state: all asked (in parts), or one (whole) */
  readonly from: readonly string[]
  /** the state matches a digest that enough donors announced (always, when in parts) */
  readonly verified: boolean
}

interface Announced { readonly step: number, readonly digest: string, readonly donors: string[] }

const aborted = (signal: AbortSignal | undefined): boolean => signal?.aborted === true

/** the (step, digest) most donors announced, if at least `needed` did */
function vouchedDigest (parts: ReadonlyArray<{ donor: string, part: FetchedRange }>, needed: number): Announced | undefined {
  const tally = new Map<string, Announced>()
  for (const { donor, part } of parts) {
    const key = `${part.step}:${part.digest}`
    const entry = tally.get(key) ?? { step: part.step, digest: part.digest, donors: [] }
    entry.donors.push(donor)
    tally.set(key, entry)
  }
  const best = [...tally.values()].sort((a, b) => b.donors.length - a.donors.length)[0]
  return best !== undefined && best.donors.length >= needed ? best : undefined
}

/**
 * The state of job `request.jobId` at a step >= `request.minStep` from `donors` (peer ids, at
 * most 64 used, the first the one a single fetch would use). Throws StateSyncError when no donor
 * serves a state it can take (see the file comment); 'corrupt' when donors lied and no state f+1
 * of them vouch for came whole.
 */
export async function fetchStateFromDonors (
  node: Libp2p,
  donors: readonly string[],
  request: { jobId: string, minStep?: number },
  options: FetchFromDonorsOptions
): Promise<DonorFetch> {
  const asked = [...new Set(donors)].slice(0, MAX_STATE_RANGES)
  if (asked.length === 0) throw new StateSyncError('bad-request', 'no donor to fetch the state from')
  const whole = (donor: string): Promise<TrainingSnapshot> => fetchSnapshot(node, peerIdFromString(donor), request, options)
  if (asked.length === 1) return { snapshot: await whole(asked[0]), from: asked, verified: false }

  const settled = await Promise.allSettled(asked.map((donor, index) =>
    fetchSnapshotRange(node, peerIdFromString(donor), { ...request, range: { index, count: asked.length } }, options)))
  if (aborted(options.signal)) throw new StateSyncError('aborted', 'state transfer aborted by the caller')
  const parts = settled.flatMap((s, i) => s.status === 'fulfilled' ? [{ donor: asked[i], part: s.value }] : [])
  const failures = settled.flatMap((s, i) => s.status === 'rejected' ? [`${asked[i]}: ${(s.reason as Error).message}`] : [])
  const needed = Math.min(options.vouchers, asked.length)
  const vouched = vouchedDigest(parts, needed)

  // two digests for one step: one of them is a lie
  let lied = parts.some((p) => parts.some((q) => q.part.step === p.part.step && q.part.digest !== p.part.digest))
  const announced = parts.map((p) => `${p.donor} step ${p.part.step} ${p.part.digest.slice(0, 12)}`).join(', ')
  let reason: string
  if (failures.length === 0 && vouched?.donors.length === asked.length) {
    const snapshot = assembleSnapshotRanges(parts.map((p) => p.part))
    if (stateDigest(snapshot.params, snapshot.optimizerState) === vouched.digest) return { snapshot, from: asked, verified: true }
    lied = true
    reason = `the state put together from ${asked.length} donors' parts does not match the digest they announced: a donor sent other values`
  } else if (failures.length === 0) {
    reason = `donors announced different states: ${announced}`
  } else {
    reason = `${failures.length} of ${asked.length} donors did not send their part (${failures.join('; ')})${lied ? `, and the others announced different states: ${announced}` : ''}`
  }
  if (lied && vouched === undefined) throw new StateSyncError('corrupt', `${reason}; no state is announced by ${needed} donors, so none is taken`)

  // whole from one donor: those that announced the vouched state first, the first named before the rest
  const order = vouched === undefined ? asked : [...asked.filter((d) => vouched.donors.includes(d)), ...asked.filter((d) => !vouched.donors.includes(d))]
  let lastError: unknown
  for (const donor of order) {
    options.onFallback?.(reason, donor)
    try {
      const snapshot = await whole(donor)
      if (vouched === undefined) return { snapshot, from: [donor], verified: false }
      if (snapshot.step === vouched.step) {
        if (stateDigest(snapshot.params, snapshot.optimizerState) === vouched.digest) return { snapshot, from: [donor], verified: true }
        lied = true
        reason = `${donor} sent a state at step ${snapshot.step} other than the one ${vouched.donors.length} donors announced for it`
        lastError = new StateSyncError('corrupt', reason)
        continue
      }
      // the donor went on past the announced step: nothing to check it against, which is only
      // taken when no donor is known to have lied
      if (!lied) return { snapshot, from: [donor], verified: false }
      reason = `${donor} sent a state at step ${snapshot.step}, not the step ${vouched.step} that ${vouched.donors.length} donors announced`
      lastError = new StateSyncError('stale', reason)
    } catch (error) {
      if (aborted(options.signal)) throw error
      reason = `${donor}: ${(error as Error).message}`
      lastError = error
    }
  }
  throw lastError instanceof StateSyncError ? lastError : new StateSyncError('closed', `no donor served the state: ${reason}`, { cause: lastError })
}
