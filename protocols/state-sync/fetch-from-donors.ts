/**
 * Fetch a job's state from several donors at once: donor i sends range i of n of the floats
 * (snapshot-range.ts), so a joiner's transfer is spread over the members that hold the state and
 * no one member carries it all. For a synchronous job only: there every honest member holds the
 * same state at a step.
 *
 * Each donor announces its step and the digest of its whole state (stateDigest: parameters and
 * optimizer state), and every range carries the snapshot's JSON part. A state is vouched for when
 * `vouchers` donors (f+1: one of them honest) announce the same step and digest and send the same
 * job config, epoch, cursor, learning rate and finished flag. The parts are used when every donor
 * vouches for one state and the reassembled floats hash to its digest; the JSON part is then
 * theirs. Otherwise, if some state is vouched for, it comes whole from one of the donors that
 * vouched (range 0 of 1 at exactly its step, which donors keep: state-at-step.ts) and is taken
 * only if it is that state. With no state vouched for the fetch fails, and the caller asks again,
 * except where the members stand at different steps and only the admitting coordinator holds the
 * state of the step the joiner was admitted at (admissionState: then that state, unchecked);
 * only when no donor announced anything at all (none serves ranges, or none answered) does the
 * state come whole and unchecked from the first donor that serves one, as a single-donor fetch.
 *
 * A donor slower than the rest does not hold the others up: once half the parts have arrived,
 * the rest get twice the time taken so far plus RANGE_GRACE_MS, then count as failed.
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
  /**
   * the coordinator that admitted the caller at `minStep` (a joiner's fetch): when no state is
   * vouched for because every other donor is past that step or did not answer, its state at
   * exactly that step is taken, unchecked (see the file comment)
   */
  readonly admittedBy?: string
}

export interface DonorFetch {
  readonly snapshot: TrainingSnapshot
  /** the donors whose bytes make up the state: all asked (in parts), or one (whole) */
  readonly from: readonly string[]
  /** the state matches a digest that enough donors announced (always, when in parts) */
  readonly verified: boolean
  /** why an unverified state was taken when more than one donor was asked */
  readonly unchecked?: string
}

interface Announced { readonly step: number, readonly digest: string, readonly key: string, readonly donors: string[] }

/** slack the slowest parts get beyond twice the time the first half took */
const RANGE_GRACE_MS = 5_000

/** JSON with every object's keys sorted: equal values, equal text (members build one config in different key orders) */
function canonicalJson (value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}

/**
 * Of the parts' JSON, the one most donors sent alike in what jsonKey leaves out but members share:
 * the LR schedule and early stopping (meta.convergence) and the epochs' validation figures (the
 * train loss and durations in the history, and the loss sums, are each member's own); the first
 * on a tie. With one Byzantine donor among three or more it is an honest donor's.
 */
function commonestMeta (parts: ReadonlyArray<{ part: FetchedRange }>): Record<string, unknown> {
  const shared = (meta: Record<string, unknown>): string => canonicalJson([
    meta.convergence ?? null,
    Array.isArray(meta.history) ? (meta.history as Array<Record<string, unknown>>).map((r) => [r.epoch, r.step, r.validationLoss, r.validationAccuracy, r.lr]) : null
  ])
  const counts = new Map<string, number>()
  for (const { part } of parts) counts.set(shared(part.json.meta), (counts.get(shared(part.json.meta)) ?? 0) + 1)
  let best = parts[0].part.json.meta
  for (const { part } of parts) if ((counts.get(shared(part.json.meta)) ?? 0) > (counts.get(shared(best)) ?? 0)) best = part.json.meta
  return best
}

/** what donors of one state send alike besides its floats: the job and where it stands */
function jsonKey (json: { jobConfig: unknown, step: number, epoch: number, cursor: number, meta: Record<string, unknown> }): string {
  return canonicalJson([json.jobConfig, json.step, json.epoch, json.cursor, json.meta.lr ?? null, json.meta.finished ?? null])
}

const aborted = (signal: AbortSignal | undefined): boolean => signal?.aborted === true
/** a peer id short enough for a message that lists several (its last 8 characters) */
const short = (peer: string): string => `…${peer.slice(-8)}`

/** the state (step, digest, JSON key) most donors announced, if at least `needed` did */
function vouchedState (parts: ReadonlyArray<{ donor: string, part: FetchedRange }>, needed: number): Announced | undefined {
  const tally = new Map<string, Announced>()
  for (const { donor, part } of parts) {
    const key = jsonKey(part.json)
    const id = `${part.step}:${part.digest}:${key}`
    const entry = tally.get(id) ?? { step: part.step, digest: part.digest, key, donors: [] }
    entry.donors.push(donor)
    tally.set(id, entry)
  }
  const best = [...tally.values()].sort((a, b) => b.donors.length - a.donors.length)[0]
  return best !== undefined && best.donors.length >= needed ? best : undefined
}

/**
 * The admitting coordinator's announced state when no state can be vouched for because the job's
 * members stand at different steps: the coordinator (`admittedBy`) announced a state at exactly
 * the admission step, no donor announced another one for that step, and every other donor is
 * past it or did not answer. That happens when a member crashed having sent its gradient for a
 * step to some members only: those completed the step, the others wait for that gradient, and
 * only the re-joining member can send it, from the state of that step. When the coordinator is
 * the one waiting, the others are past the step (only it holds that state); when the others
 * wait at the step before, they cannot answer for the coordinator's step, and the coordinator
 * and the joiner completing it makes f+1 members ahead of them, so they re-sync. Taking it costs
 * no more trust than the admission itself (the coordinator decides the membership); the
 * per-step digest comparison checks the state from the next step on.
 */
function admissionState (parts: ReadonlyArray<{ donor: string, part: FetchedRange }>, minStep: number | undefined, admittedBy: string | undefined): Announced | undefined {
  const own = parts.find((p) => p.donor === admittedBy)
  if (own === undefined || minStep === undefined || own.part.step !== minStep) return undefined
  const key = jsonKey(own.part.json)
  const others = parts.filter((p) => p !== own)
  if (others.some((p) => p.part.step < minStep || (p.part.step === minStep && (p.part.digest !== own.part.digest || jsonKey(p.part.json) !== key)))) return undefined
  return { step: minStep, digest: own.part.digest, key, donors: [own.donor] }
}

/** `state` whole (range 0 of 1 at exactly its step) from its first donor, if that donor sends that state */
async function fetchWholeAt (node: Libp2p, state: Announced, request: { jobId: string }, options: FetchFromDonorsOptions): Promise<TrainingSnapshot | undefined> {
  const whole = await fetchSnapshotRange(node, peerIdFromString(state.donors[0]), { ...request, minStep: state.step, range: { index: 0, count: 1 } }, options)
  const snapshot = assembleSnapshotRanges([whole])
  const same = whole.step === state.step && jsonKey(whole.json) === state.key && stateDigest(snapshot.params, snapshot.optimizerState) === state.digest
  return same ? snapshot : undefined
}

/**
 * The state of job `request.jobId` at a step >= `request.minStep` from `donors` (peer ids, at
 * most 64 used, the first the one a single fetch would use). Throws StateSyncError when it takes
 * no state (see the file comment): 'corrupt' when donors announced two states for one step or
 * sent other values than they announced, else the last donor's error or 'stale'.
 */
export async function fetchStateFromDonors (
  node: Libp2p,
  donors: readonly string[],
  request: { jobId: string, minStep?: number },
  options: FetchFromDonorsOptions
): Promise<DonorFetch> {
  const asked = [...new Set(donors)].slice(0, MAX_STATE_RANGES)
  if (asked.length === 0) throw new StateSyncError('bad-request', 'no donor to fetch the state from')
  if (asked.length === 1) return { snapshot: await fetchSnapshot(node, peerIdFromString(asked[0]), request, options), from: asked, verified: false }

  const settled = await fetchRanges(node, asked, request, options)
  if (aborted(options.signal)) throw new StateSyncError('aborted', 'state transfer aborted by the caller')
  const parts = settled.flatMap((s, i) => s.status === 'fulfilled' ? [{ donor: asked[i], part: s.value }] : [])
  const failures = settled.flatMap((s, i) => s.status === 'rejected' ? [`${short(asked[i])}: ${(s.reason as Error).message}`] : [])
  const needed = Math.min(options.vouchers, asked.length)
  const vouched = vouchedState(parts, needed)
  // two digests for one step: one of them is a lie
  let lied = parts.some((p) => parts.some((q) => q.part.step === p.part.step && q.part.digest !== p.part.digest))
  const announced = parts.map((p) => `${short(p.donor)} step ${p.part.step} ${p.part.digest.slice(0, 12)}${vouched !== undefined && jsonKey(p.part.json) !== vouched.key ? ' (other job details)' : ''}`).join(', ')

  let reason: string
  if (failures.length === 0 && vouched?.donors.length === asked.length) {
    const snapshot = assembleSnapshotRanges(parts.map((p) => p.part))
    if (stateDigest(snapshot.params, snapshot.optimizerState) === vouched.digest) return { snapshot: { ...snapshot, meta: commonestMeta(parts) }, from: asked, verified: true }
    lied = true
    reason = `the state put together from ${asked.length} donors' parts does not match the digest they announced: a donor sent other values`
  } else if (failures.length === 0) {
    reason = `donors announced different states: ${announced}`
  } else {
    reason = `${failures.length} of ${asked.length} donors did not send their part (${failures.join('; ')})${parts.length > 0 ? `; the others announced ${announced}` : ''}`
  }

  if (parts.length === 0) {
    // nothing announced to check a state against (no donor serves ranges, or none answered)
    for (const donor of asked) {
      options.onFallback?.(reason, donor)
      try {
        return { snapshot: await fetchSnapshot(node, peerIdFromString(donor), request, options), from: [donor], verified: false }
      } catch (error) {
        if (aborted(options.signal)) throw error
        reason = `${donor}: ${(error as Error).message}`
      }
    }
    throw new StateSyncError('closed', `no donor served the state: ${reason}`)
  }
  if (vouched === undefined) {
    const admission = lied ? undefined : admissionState(parts, request.minStep, options.admittedBy)
    if (admission !== undefined) {
      const unchecked = `no state is announced by ${needed} donors: the others are past step ${admission.step} or did not answer (${announced}${failures.length > 0 ? `; ${failures.join('; ')}` : ''}), so the state of the coordinator that admitted this peer at step ${admission.step} is taken, unchecked`
      options.onFallback?.(unchecked, admission.donors[0])
      const snapshot = await fetchWholeAt(node, admission, request, options)
      if (snapshot !== undefined) return { snapshot, from: admission.donors, verified: false, unchecked }
      reason = `${admission.donors[0]} did not serve the state it announced for step ${admission.step}`
    }
    throw new StateSyncError(lied ? 'corrupt' : 'stale', `${reason}; no state is announced by ${needed} donors, so none is taken`)
  }

  // whole, at exactly the vouched step, from a donor that vouched for it (the first named first)
  for (const donor of vouched.donors) {
    options.onFallback?.(reason, donor)
    try {
      const whole = await fetchSnapshotRange(node, peerIdFromString(donor), { ...request, minStep: vouched.step, range: { index: 0, count: 1 } }, options)
      const snapshot = assembleSnapshotRanges([whole])
      if (whole.step === vouched.step && jsonKey(whole.json) === vouched.key && stateDigest(snapshot.params, snapshot.optimizerState) === vouched.digest) {
        const agreeing = parts.filter((p) => vouched.donors.includes(p.donor))
        return { snapshot: { ...snapshot, meta: commonestMeta([{ part: whole }, ...agreeing]) }, from: [donor], verified: true }
      }
      reason = `${donor} sent a state (step ${whole.step}) other than the one ${vouched.donors.length} donors announced for step ${vouched.step}`
    } catch (error) {
      if (aborted(options.signal)) throw error
      reason = `${donor}: ${(error as Error).message}`
    }
  }
  throw new StateSyncError(lied ? 'corrupt' : 'stale', `no donor served the state ${vouched.donors.length} donors announced for step ${vouched.step}: ${reason}`)
}

/**
 * Range i of n from donor i, all at once; once half have arrived the rest get twice the time
 * taken so far plus RANGE_GRACE_MS before they are aborted (a stalled or queue-holding donor
 * must not hold every joiner for its whole timeout).
 */
async function fetchRanges (
  node: Libp2p,
  asked: readonly string[],
  request: { jobId: string, minStep?: number },
  options: FetchFromDonorsOptions
): Promise<Array<PromiseSettledResult<FetchedRange>>> {
  const started = performance.now()
  const late = new AbortController()
  const signal = options.signal === undefined ? late.signal : AbortSignal.any([options.signal, late.signal])
  let done = 0
  let timer: NodeJS.Timeout | undefined
  const onDone = (): void => {
    done++
    if (timer !== undefined || 2 * done < asked.length || done === asked.length) return
    const graceMs = 2 * (performance.now() - started) + RANGE_GRACE_MS
    timer = setTimeout(() => { late.abort(new StateSyncError('timeout', `this donor's part was not there ${Math.round(graceMs)} ms after half the others`)) }, graceMs)
  }
  try {
    return await Promise.allSettled(asked.map(async (donor, index) => {
      try {
        return await fetchSnapshotRange(node, peerIdFromString(donor), { ...request, range: { index, count: asked.length } }, { ...options, signal })
      } finally {
        onDone()
      }
    }))
  } finally {
    clearTimeout(timer)
  }
}
