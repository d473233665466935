/**
 * Answers over the broker matched to the questions they answer: a request's reply, or a snapshot
 * fetch's chunks, arrive on this peer's control queue keyed by (sender, request id), and go to
 * whoever waits for that key, until it is done, times out, is aborted or the transport stops.
 */
import { BrokerRequestTimeoutError } from './control-messages.js'
import type { Envelope } from './envelope.js'

export interface AwaitAnswersOptions {
  /** ms without the answer (`idle`: without a further envelope) before it fails with BrokerRequestTimeoutError */
  readonly timeoutMs: number
  readonly signal?: AbortSignal
  /** the timeout restarts at every envelope (a chunked answer may take long as a whole) */
  readonly idle?: boolean
}

export interface PendingAnswers {
  /**
   * Waits for envelopes answering `id` from `peer`: `onEnvelope` takes each and returns true when
   * the answer is complete (its throw fails the wait). `done` resolves then; `cancel()` fails it
   * (e.g. the question could not be sent).
   */
  await(peer: string, id: string, onEnvelope: (envelope: Envelope) => boolean, options: AwaitAnswersOptions): { done: Promise<void>, cancel(): void }
  /** an envelope from `from` answering `id`; ignored when nobody waits for it (late, or unasked) */
  deliver(from: string, id: string, envelope: Envelope): void
  /** fails every wait with `error` (the transport stopped) */
  rejectAll(error: Error): void
}

interface Pending {
  resolve(envelope: Envelope): void
  reject(error: Error): void
}

export function createPendingAnswers(): PendingAnswers {
  const pending = new Map<string, Pending>()
  return {
    await(peer, id, onEnvelope, { timeoutMs, signal, idle = false }) {
      const k = `${peer}/${id}`
      let timer: NodeJS.Timeout | undefined
      let cancel = (): void => {}
      const done = new Promise<void>((resolve, reject) => {
        if (signal?.aborted === true) {
          reject(signal.reason as Error)
          return
        }
        const finish = (error?: Error): void => {
          clearTimeout(timer)
          pending.delete(k)
          signal?.removeEventListener('abort', onAbort)
          if (error === undefined) resolve()
          else reject(error)
        }
        const arm = (): void => {
          clearTimeout(timer)
          timer = setTimeout(() => finish(new BrokerRequestTimeoutError(`no answer from ${peer} over the broker within ${timeoutMs} ms`)), timeoutMs)
        }
        const onAbort = (): void => finish(signal?.reason as Error ?? new Error('aborted'))
        cancel = () => finish(new Error('cancelled'))
        signal?.addEventListener('abort', onAbort, { once: true })
        arm()
        pending.set(k, {
          resolve: (envelope) => {
            try {
              if (onEnvelope(envelope)) finish()
              else if (idle) arm()
            } catch (error) {
              finish(error as Error)
            }
          },
          reject: (error) => finish(error)
        })
      })
      return { done, cancel: () => cancel() }
    },
    deliver(from, id, envelope) {
      pending.get(`${from}/${id}`)?.resolve(envelope)
    },
    rejectAll(error) {
      for (const p of [...pending.values()]) p.reject(error)
      pending.clear()
    }
  }
}
