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

/**
 * What libp2p's "failed to be listened on" error says of each listen address it refused, in
 * p2pmld's words with the fix: an address not of this machine (EADDRNOTAVAIL), a port below 1024
 * without the right (EACCES), a transport p2pmld does not run (UDP, QUIC, ...); undefined when it
 * names none of these (busy ports are addressesInUse's).
 */
export function listenProblems (error: unknown): string | undefined {
  const message = error instanceof Error ? error.message : String(error)
  const problems = [...message.matchAll(/(\/(?:ip4|ip6|dns4|dns6|dns)\/[^\s:]+(?:\/[^\s:]+)*): ([^\n;]+)/g)].map(([, address, reason]) => {
    if (/EADDRNOTAVAIL/.test(reason)) return `${address}: ${address.split('/')[2]} is not an address of this machine (listen on one of its own, which \`ip addr\` lists, or on /ip4/0.0.0.0/tcp/PORT for all of them)`
    if (/EACCES/.test(reason)) return `${address}: this user may not listen on that port (ports below 1024 need root: use a higher one, e.g. 4001)`
    if (/UnsupportedListenAddress|No transport/.test(reason)) return `${address}: p2pmld listens over TCP only (e.g. /ip4/0.0.0.0/tcp/4001)`
    return undefined
  }).filter((p): p is string => p !== undefined)
  return problems.length > 0 ? `cannot listen on ${problems.join('; ')}` : undefined
}

export class PeerKeyError extends Error {
  override name = 'PeerKeyError'
}

/**
 * a dial that every address refused (ECONNREFUSED: nothing listens there), as libp2p throws it:
 * the one address's error, or an AggregateError of every address's (PublishReport.refused)
 */
export function dialRefused (error: unknown): boolean {
  const refused = (e: unknown): boolean => {
    const err = e as { code?: string, message?: string, cause?: unknown } | undefined
    return err !== undefined && err !== null && (/ECONNREFUSED/.test(`${err.code ?? ''} ${err.message ?? ''}`) || (err.cause !== undefined && err.cause !== e && refused(err.cause)))
  }
  if (error instanceof AggregateError) return error.errors.length > 0 && error.errors.every(refused)
  return refused(error)
}
