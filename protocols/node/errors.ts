export class InvalidMultiaddrError extends Error {
  override name = 'InvalidMultiaddrError'
}

export class PeerNodeError extends Error {
  override name = 'PeerNodeError'
}

export class PeerKeyError extends Error {
  override name = 'PeerKeyError'
}
