/**
 * Printing results and failures; a failed command prints one line to stderr and exits 1, and
 * under --json also prints `{"error": {"message": <that line>}}` to stdout, so a script reading
 * stdout always gets a JSON document.
 */
import type { ClientOptions } from './daemon-target.js'

export function printResult<T>(options: ClientOptions, result: T, human: (result: T) => string): void {
  process.stdout.write((options.json === true ? JSON.stringify(result, null, 2) : human(result)) + '\n')
}

export function oneLineError(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err)
  return message.split('\n').map((line) => line.trim()).filter((line) => line !== '').join('; ').replace(/:;/g, ':')
}

/** A failure as the JSON document --json promises on stdout: `{"error": {"message": <its one line>}}`. */
export function printJsonFailure(message: string): void {
  process.stdout.write(JSON.stringify({ error: { message } }, null, 2) + '\n')
}

/** The failure's line on stderr (and, for `json`, its JSON document on stdout); exit code 1. */
export function reportFailure(err: unknown, json = false): void {
  const message = oneLineError(err)
  if (json) printJsonFailure(message)
  process.stderr.write(`p2pmld: ${message}\n`)
  process.exitCode = 1
}

/** Whether a commander action's arguments (positionals, then the options object, then the command) ask for --json. */
function asksForJson(args: readonly unknown[]): boolean {
  const options = args.at(-2)
  return typeof options === 'object' && options !== null && (options as { json?: unknown }).json === true
}

/** Wraps a commander action so every failure ends as one line and a non-zero exit code (and, under --json, a JSON document). */
export function action<A extends unknown[]>(run: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await run(...args)
    } catch (err) {
      reportFailure(err, asksForJson(args))
    }
  }
}
