// Node 20 lacks Promise.withResolvers; the libp2p 3 stack calls it at run time.
// Every entry point (CLI, worker threads, Lambda handler, vitest setup) imports this file first.
if (typeof (Promise as { withResolvers?: unknown }).withResolvers !== 'function') {
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    value: function withResolvers<T>() {
      let resolve!: (value: T | PromiseLike<T>) => void
      let reject!: (reason?: unknown) => void
      const promise = new Promise<T>((res, rej) => {
        resolve = res
        reject = rej
      })
      return { promise, resolve, reject }
    }
  })
}
// The AWS SDK v3 prints a NodeVersionSupportWarning on Node 20 at its first client: SDK releases
// after January 2027 will need Node 22. The versions package-lock.json pins run on Node 20.19+,
// so the warning is noise in the daemon's output; the README's offload section says it instead.
// A user who sets the variable themselves keeps their choice.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
// ONNX Runtime's Linux build carries Microsoft's telemetry SDK: its first session in a process
// left an empty /tmp/mat-debug-<pid>.log behind (a trial counted one more per `train`), and the
// SDK holds an events endpoint. A training daemon sends nothing it was not asked to: off unless
// the user sets the variable (read when ORT sets up its environment, at the first session).
process.env.ORT_DISABLE_TELEMETRY ??= '1'
export {}
