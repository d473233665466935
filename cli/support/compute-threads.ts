/** `--compute-threads` of the commands that compute in this process (train, estimate), as `p2pmld start` names it. */
/**
 * The intra-op threads `--compute-threads` (as `p2pmld start` names them) or its old name
 * `--threads` gives, 2 by default; throws naming the flag on a value that is not a whole number
 * >= 1, or when both are given.
 */
export function computeThreads(given: string | undefined, oldName: string | undefined): number {
  if (given !== undefined && oldName !== undefined) throw new Error('--threads is the old name of --compute-threads: give one of them')
  const [flag, value] = oldName !== undefined ? ['--threads', oldName] : ['--compute-threads', given ?? '2']
  const threads = Number(value)
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`${flag} must be a whole number >= 1, got '${value}'`)
  return threads
}
