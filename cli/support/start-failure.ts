/** Start-up failures of `p2pmld start`, said in p2pmld's words with the flag that fixes them. */

/**
 * A busy listen port (ListenAddressInUseError from the node) gets the fix: another port, or
 * tcp/0 for one the system picks. Other errors pass through unchanged.
 */
export function explainStartFailure(error: unknown): unknown {
  if (!(error instanceof Error) || error.name !== 'ListenAddressInUseError') return error
  const addresses = (error as Error & { addresses?: readonly string[] }).addresses ?? []
  const free = addresses[0]?.replace(/\/tcp\/\d+/, '/tcp/0') ?? '/ip4/0.0.0.0/tcp/0'
  return new Error(`${error.message}: stop the process that holds it, or listen elsewhere with --listen (--listen ${free} lets the system pick a free port)`, { cause: error })
}
