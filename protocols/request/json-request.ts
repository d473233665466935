/**
 * One JSON request, one JSON response, over a fresh libp2p stream (length-prefixed frames).
 * Used for the small control exchanges (job discovery, join, leave). Both sides validate
 * what they read with a zod schema; sizes and time are bounded.
 */
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import * as lp from 'it-length-prefixed'
import type { z } from 'zod'

export const MAX_JSON_FRAME_BYTES = 1024 * 1024

export class RequestError extends Error {
  override name = 'RequestError'
}

export class RemoteError extends Error {
  override name = 'RemoteError'
}

/**
 * a refusal the requester expects and handles (it asks again, or asks another peer: a peer that
 * runs no job yet, a job that has not started): a handler throws it to have it counted as
 * refused but not reported as a problem (`expected` in onRejected)
 */
export class ExpectedRefusal extends Error {
  override name = 'ExpectedRefusal'
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

async function readOneFrame(stream: Stream, signal: AbortSignal): Promise<Uint8Array> {
  const frames = lp.decode(stream, { maxDataLength: MAX_JSON_FRAME_BYTES })
  const onAbort = (): void => stream.abort(new RequestError('timed out waiting for the reply'))
  signal.addEventListener('abort', onAbort, { once: true })
  try {
    for await (const frame of frames) return frame.subarray()
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
  throw new RequestError('stream closed before a reply arrived')
}

function writeFrame(stream: Stream, value: unknown): void {
  stream.send(lp.encode.single(encoder.encode(JSON.stringify(value))))
}

/** why a request was not served: not JSON, not the schema, refused by the handler, or no readable frame */
export type JsonRequestRejection = 'bad-json' | 'bad-request' | 'refused' | 'unreadable'

export interface JsonRequestHandlerOptions {
  readonly timeoutMs?: number
  readonly onError?: (error: unknown) => void
  /**
   * every request not served, by reason (the daemon counts them); expected: the handler threw an
   * ExpectedRefusal, or the requester reset the stream before its request arrived ('unreadable')
   */
  readonly onRejected?: (reason: JsonRequestRejection, remotePeer: PeerId, message: string, expected: boolean) => void
}

/**
 * Serve `protocol`: each stream carries one request; the handler's value (or error) is the reply.
 * The handler's `requesterGone` aborts when the stream closes before the reply is written: the
 * requester gave up, stopped, or its connection died (a handler that holds its reply can then
 * undo what the request did)
 */
export async function handleJsonRequests<Req>(
  node: Libp2p,
  protocol: string,
  requestSchema: z.ZodType<Req>,
  handler: (request: Req, remotePeer: PeerId, requesterGone: AbortSignal) => Promise<unknown>,
  options: JsonRequestHandlerOptions = {}
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 30_000
  await node.handle(protocol, async (stream, connection) => {
    const signal = AbortSignal.timeout(timeoutMs)
    const gone = new AbortController()
    const onClose = (): void => { gone.abort(new RequestError('the requester closed the stream before the reply')) }
    stream.addEventListener('close', onClose, { once: true })
    try {
      const bytes = await readOneFrame(stream, signal)
      let raw: unknown
      try {
        raw = JSON.parse(decoder.decode(bytes))
      } catch {
        options.onRejected?.('bad-json', connection.remotePeer, 'request is not valid JSON', false)
        writeFrame(stream, { ok: false, error: 'request is not valid JSON' })
        await stream.close()
        return
      }
      const parsed = requestSchema.safeParse(raw)
      if (!parsed.success) {
        const error = `invalid request: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`
        options.onRejected?.('bad-request', connection.remotePeer, error.slice(0, 200), false)
        writeFrame(stream, { ok: false, error })
        await stream.close()
        return
      }
      let reply: { ok: true, result: unknown } | { ok: false, error: string }
      try {
        reply = { ok: true, result: await handler(parsed.data, connection.remotePeer, gone.signal) }
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error)
        options.onRejected?.('refused', connection.remotePeer, message, error instanceof ExpectedRefusal)
        reply = { ok: false, error: message }
      }
      try {
        writeFrame(stream, reply)
        await stream.close()
      } catch (error) {
        // the requester hung up before the reply (it gave up waiting, or stopped): nothing was
        // refused or unreadable (16 busy daemons logged each of these twice, as both)
        stream.abort(error instanceof Error ? error : new Error(String(error)))
      }
    } catch (error) {
      // a reset before the request arrived is the requester going away (its process stopped, or
      // it gave up): counted apart as expected, as a peer leaving at a job's end does it every run
      const reset = error instanceof Error && error.name === 'StreamResetError'
      const message = reset ? 'the requester reset the stream before its request arrived' : error instanceof Error ? error.message : String(error)
      options.onRejected?.('unreadable', connection.remotePeer, message, reset)
      options.onError?.(error)
      stream.abort(error instanceof Error ? error : new Error(String(error)))
    } finally {
      stream.removeEventListener('close', onClose)
    }
  }, { maxInboundStreams: 64 })
}

export interface JsonRequestOptions {
  readonly timeoutMs?: number
  readonly signal?: AbortSignal
}

/** Send one request and return the validated reply; a remote failure becomes a RemoteError. */
export async function requestJson<Res>(
  node: Libp2p,
  target: PeerId | Multiaddr,
  protocol: string,
  request: unknown,
  responseSchema: z.ZodType<Res>,
  options: JsonRequestOptions = {}
): Promise<Res> {
  // a timer of its own, not AbortSignal.timeout: combined with AbortSignal.any, a timeout signal
  // nothing else holds can be collected before it fires (daemon/job/budget-signal.ts)
  const timeout = new AbortController()
  const timer = setTimeout(() => { timeout.abort(new RequestError('timed out')) }, options.timeoutMs ?? 15_000)
  const signal = options.signal === undefined ? timeout.signal : AbortSignal.any([timeout.signal, options.signal])
  let stream: Stream
  try {
    stream = await node.dialProtocol(target, protocol, { signal })
  } catch (error) {
    clearTimeout(timer)
    throw error
  }
  try {
    writeFrame(stream, request)
    const bytes = await readOneFrame(stream, signal)
    let reply: unknown
    try {
      reply = JSON.parse(decoder.decode(bytes))
    } catch {
      throw new RequestError(`peer replied on ${protocol} with bytes that are not JSON`)
    }
    const envelope = reply as { ok?: unknown, error?: unknown, result?: unknown }
    if (envelope.ok !== true) {
      throw new RemoteError(typeof envelope.error === 'string' ? envelope.error : `peer refused the ${protocol} request`)
    }
    const parsed = responseSchema.safeParse(envelope.result)
    if (!parsed.success) throw new RequestError(`peer sent an invalid ${protocol} reply: ${parsed.error.message}`)
    return parsed.data
  } finally {
    clearTimeout(timer)
    await stream.close().catch(() => {})
  }
}
