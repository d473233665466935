/** Printing results and failures; a failed command prints one line to stderr and exits 1. */
import type { ClientOptions } from './daemon-target.js'

export function printResult<T>(options: ClientOptions, result: T, human: (result: T) => string): void {
  process.stdout.write((options.json === true ? JSON.stringify(result, null, 2) : human(result)) + '\n')
}

export function oneLineError(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err)
  return message.split('\n').map((line) => line.trim()).filter((line) => line !== '').join('; ').replace(/:;/g, ':')
}

export function reportFailure(err: unknown): void {
  process.stderr.write(`p2pmld: ${oneLineError(err)}\n`)
  process.exitCode = 1
}

/** Wraps a commander action so every failure ends as one line and a non-zero exit code. */
export function action<A extends unknown[]>(run: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await run(...args)
    } catch (err) {
      reportFailure(err)
    }
  }
}
