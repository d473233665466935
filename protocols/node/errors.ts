export class InvalidMultiaddrError extends Error {
  override name = 'InvalidMultiaddrError'
}

export class PeerNodeError extends Error {
  override name = 'PeerNodeError'
}

/** A listen address is taken by another process (EADDRINUSE); `addresses` are the ones refused. */
export class ListenAddressInUseError extends PeerNodeError {
  override name = 'ListenAddressInUseError'
  constructor (readonly addresses: readonly string[]) {
    super(`cannot listen on ${addresses.join(', ')}: the port is already in use (another p2pmld daemon, or another program, listens there)`)
  }
}

/** The listen addresses libp2p's "failed to be listened on" error reports as EADDRINUSE. */
export function addressesInUse (error: unknown): string[] {
  const message = error instanceof Error ? error.message : String(error)
  return [...message.matchAll(/^\s*(\/\S+): .*\bEADDRINUSE\b/gm)].map((m) => m[1])
}

export class PeerKeyError extends Error {
  override name = 'PeerKeyError'
}
