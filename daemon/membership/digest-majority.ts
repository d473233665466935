/**
 * Which parameter digest the members hold most: the state a diverged peer re-syncs to. Every
 * peer decides from the same digests the same way, so equal-sized groups do not each keep their
 * own parameters. A tie goes to the group holding the most senior member (membership order),
 * not to a digest value: a value order could be won by a peer that grinds or invents a digest.
 */
export interface MajorityDecision {
  readonly digest: string
  /** peers known to hold it, most senior first (self included when it does) */
  readonly holders: readonly string[]
}

/**
 * `digests` maps each peer (self included) to the digest it holds; `seniority` lists peers most
 * senior first (peers missing from it rank last, by id).
 */
export function majorityDigest(digests: ReadonlyMap<string, string>, seniority: readonly string[]): MajorityDecision {
  if (digests.size === 0) throw new Error('majorityDigest needs at least one digest')
  const rank = (peer: string): number => {
    const i = seniority.indexOf(peer)
    return i < 0 ? seniority.length : i
  }
  const bySeniority = (a: string, b: string): number => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0)
  const groups = new Map<string, string[]>()
  for (const [peer, digest] of digests) groups.set(digest, [...(groups.get(digest) ?? []), peer])
  const ranked = [...groups.entries()]
    .map(([digest, holders]) => ({ digest, holders: holders.sort(bySeniority) }))
    .sort((a, b) => b.holders.length - a.holders.length || bySeniority(a.holders[0], b.holders[0]))
  return ranked[0]
}
