import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { InvalidMultiaddrError } from './errors.js'

/** Parse a user-given multiaddr, naming it (and what it was for) in the error. */
export function parseMultiaddr (text: string, what = 'address'): Multiaddr {
  let ma: Multiaddr
  try {
    ma = multiaddr(text)
  } catch (error) {
    throw new InvalidMultiaddrError(`${what} '${text}' is not a valid multiaddr (${(error as Error).message}); expected e.g. /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW...`)
  }
  if (ma.getComponents().length === 0) {
    throw new InvalidMultiaddrError(`${what} '${text}' is empty; expected e.g. /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW...`)
  }
  return ma
}

/** the /p2p/<id> component of an address, if any */
export function peerIdOf (ma: Multiaddr): string | undefined {
  return ma.getComponents().find((c) => c.name === 'p2p')?.value
}
