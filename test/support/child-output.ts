/**
 * Collects a child process's stdout and stderr and waits for patterns in them: what the e2e and
 * the netns daemon harnesses both need from a daemon they spawned.
 */
import type { ChildProcess } from 'node:child_process'

export interface ChildOutput {
  readonly exited: Promise<number | null>
  stdout(): string
  stderr(): string
  /** the exit code once the child is gone (-1 when a signal ended it), else null */
  exitCode(): number | null
  /** resolves with the first match of pattern in source(); rejects when the child exits or the time is up */
  waitFor(source: () => string, pattern: RegExp, timeoutMs: number, what: string): Promise<RegExpMatchArray>
}

export function watchChildOutput(name: string, child: ChildProcess): ChildOutput {
  let out = ''
  let err = ''
  let code: number | null = null
  let done = false
  const listeners = new Set<() => void>()
  const notify = (): void => { for (const l of listeners) l() }
  child.stdout!.on('data', (b: Buffer) => { out += b.toString(); notify() })
  child.stderr!.on('data', (b: Buffer) => { err += b.toString(); notify() })
  const exited = new Promise<number | null>((resolve) => child.on('close', (c, signal) => {
    code = c ?? (signal !== null ? -1 : null)
    done = true
    notify()
    resolve(code)
  }))

  const waitFor = (source: () => string, pattern: RegExp, timeoutMs: number, what: string): Promise<RegExpMatchArray> =>
    new Promise((resolve, reject) => {
      const tail = (): string => `${out}\n${err.split('\n').slice(-20).join('\n')}`
      const check = (): void => {
        const m = source().match(pattern)
        if (m !== null) {
          finish()
          resolve(m)
        } else if (done) {
          finish()
          reject(new Error(`${name} exited (code ${code}) before its ${what} matched ${pattern}:\n${tail()}`))
        }
      }
      const timer = setTimeout(() => {
        finish()
        reject(new Error(`${name}: no ${what} matched ${pattern} within ${timeoutMs} ms:\n${tail()}`))
      }, timeoutMs)
      const finish = (): void => {
        clearTimeout(timer)
        listeners.delete(check)
      }
      listeners.add(check)
      check()
    })

  return { exited, stdout: () => out, stderr: () => err, exitCode: () => (done ? code : null), waitFor }
}
