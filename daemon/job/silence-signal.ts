import { RequestError } from '../../protocols/request/json-request.js'

/**
 * A signal that aborts once a peer has been silent for `silentMs`: `lastHeardMs()` (a Date.now()
 * time) is looked at every `pollMs` (default 250). Its reason is a RequestError whose message is
 * `why`, for whoever logs the abort (admission-reply.ts). Over the broker nothing closes when a
 * requester dies (no stream, as over libp2p): its heartbeats stop. Call dispose() when done, to
 * clear the timer; the signal then never aborts.
 */
export function silenceSignal(lastHeardMs: () => number, silentMs: number, why: string, pollMs = 250): { readonly signal: AbortSignal, dispose(): void } {
  const controller = new AbortController()
  const timer = setInterval(() => {
    if (Date.now() - lastHeardMs() <= silentMs) return
    clearInterval(timer)
    controller.abort(new RequestError(why))
  }, pollMs)
  return { signal: controller.signal, dispose: () => clearInterval(timer) }
}
