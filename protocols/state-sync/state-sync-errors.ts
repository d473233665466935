/**
 * Errors of the state-sync protocol. Clients branch on `code` (and on `reason` for refusals the
 * server sent on purpose); a snapshot provider throws StateSyncRefusedError to refuse a request.
 */

export type StateSyncRefusal = 'unknown-job' | 'not-ready' | 'busy' | 'bad-request' | 'internal'

export type StateSyncErrorCode =
  | 'bad-request' // the caller's request is invalid
  | 'dial' // the peer could not be reached on the protocol
  | 'timeout' // the whole transfer took longer than timeoutMs
  | 'stalled' // no data moved for stallTimeoutMs
  | 'too-large' // the snapshot exceeds maxBytes
  | 'protocol' // the peer broke the framing (oversized frame, bad status frame)
  | 'corrupt' // the snapshot failed its codec checks (lengths, checksum)
  | 'closed' // the stream ended before the transfer was complete
  | 'aborted' // the caller's signal fired
  | 'stale' // the snapshot is older than the requested minStep
  | 'remote' // the server refused: see StateSyncRemoteError.reason

export class StateSyncError extends Error {
  override name = 'StateSyncError'
  readonly code: StateSyncErrorCode

  constructor (code: StateSyncErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
}

/** The server answered the request with a refusal (unknown job, not ready, busy...). */
export class StateSyncRemoteError extends StateSyncError {
  override name = 'StateSyncRemoteError'
  readonly reason: StateSyncRefusal

  constructor (reason: StateSyncRefusal, message: string) {
    super('remote', message)
    this.reason = reason
  }
}

/** Thrown by a server's getSnapshot to send a specific refusal to the client. */
export class StateSyncRefusedError extends Error {
  override name = 'StateSyncRefusedError'
  readonly reason: StateSyncRefusal

  constructor (reason: StateSyncRefusal, message: string) {
    super(message)
    this.reason = reason
  }
}
