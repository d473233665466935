/**
 * `p2pmld start` as a real child process: its stdout lines (the CLI's human output) and stderr
 * (pino JSON logs), waits on either, and a registry that kills every child a test started.
 */
import { watchChildOutput } from '../../support/child-output.js'
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { snapshotDist } from './build.js'

export interface DaemonProcess {
  readonly name: string
  readonly dataDir: string
  readonly socketPath: string
  readonly child: ChildProcess
  readonly exited: Promise<number | null>
  stdout(): string
  stderr(): string
  /** the JSON log lines on stderr that parse */
  logs(): Array<Record<string, unknown>>
  /** error/fatal log lines and any stderr line that is not a log line (stack traces, warnings) */
  problems(): string[]
  /** resolves with the first match of pattern on stdout (waits for it) */
  waitForStdout(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>
  /** the /ip4/127.0.0.1/tcp/PORT/p2p/ID address it printed */
  address(): Promise<string>
  exitCode(): number | null
  kill(signal?: NodeJS.Signals): void
}

export interface DaemonFleet {
  /** a fresh data dir under the fleet's temp dir */
  dataDir(name: string): string
  start(name: string, args: readonly string[], options?: { dataDir?: string }): DaemonProcess
  /** a one-off `p2pmld <args>` (a client command) from the same build; its exit code and output once it ends */
  command(args: readonly string[], timeoutMs?: number): Promise<{ code: number | null, stdout: string, stderr: string }>
  /** SIGKILL every child still running, remove the temp dir */
  cleanup(): Promise<void>
  /** stdout + log tail of every daemon, for failure messages */
  describe(): string
  /**
   * The exit codes of `daemons` once all exited; past `timeoutMs` an Error carrying describe(),
   * so a hang fails with the daemons' output rather than as a bare test timeout.
   */
  exits(daemons: readonly DaemonProcess[], timeoutMs: number): Promise<Array<number | null>>
}

export function createDaemonFleet(prefix: string): DaemonFleet {
  const root = mkdtempSync(join(tmpdir(), `p2pe-${prefix}-`))
  const daemons: DaemonProcess[] = []
  let n = 0
  // copied on the first start, after the test file's ensureBuilt()
  let cliMain: string | undefined

  const onExit = (): void => {
    for (const d of daemons) if (d.exitCode() === null) d.child.kill('SIGKILL')
  }
  process.once('exit', onExit)

  return {
    dataDir: (name) => join(root, `${name}-${n++}`),
    start(name, args, options = {}) {
      const dataDir = options.dataDir ?? join(root, `${name}-${n++}`)
      cliMain ??= snapshotDist(root)
      const d = startDaemon(cliMain, name, dataDir, args)
      daemons.push(d)
      return d
    },
    async command(args, timeoutMs = 60_000) {
      cliMain ??= snapshotDist(root)
      const child = spawn(process.execPath, [cliMain, ...args], { cwd: root, env: { PATH: process.env.PATH ?? '', HOME: root }, stdio: ['ignore', 'pipe', 'pipe'] })
      let stdout = ''
      let stderr = ''
      child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
      child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
      return await new Promise((resolve, reject) => {
        child.once('error', reject)
        child.once('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
      })
    },
    async cleanup() {
      process.off('exit', onExit)
      for (const d of daemons) if (d.exitCode() === null) d.kill('SIGKILL')
      await Promise.all(daemons.map((d) => d.exited))
      rmSync(root, { recursive: true, force: true })
    },
    async exits(group, timeoutMs) {
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => {
          const running = group.filter((d) => d.exitCode() === null).map((d) => d.name)
          // the names again at the end: CI shows a failure's last lines
          reject(new Error(`still running after ${timeoutMs} ms: ${running.join(', ')}\n${this.describe()}\n(still running: ${running.join(', ')})`))
        }, timeoutMs)
      })
      try {
        return await Promise.race([Promise.all(group.map(async (d) => await d.exited)), timeout])
      } finally {
        clearTimeout(timer)
      }
    },
    describe() {
      // stdout without the in-epoch progress lines (hundreds of them pushed a failure's context
      // out of what CI shows) but the last (where a hung daemon stopped), then warnings and errors
      // (and stray stderr lines)
      return daemons.map((d) => `--- ${d.name} (exit ${d.exitCode()})\n${withoutProgress(d.stdout())}\n${d.stderr().split('\n').filter((l) => !/"level":[123]0,/.test(l)).slice(-30).map((l) => l.slice(0, 400)).join('\n')}`).join('\n')
    }
  }
}

/** a console line of progress within an epoch ("epoch 5/20: 27% (13/48 steps) loss ..."); the epoch's "done" line stays */
const PROGRESS_LINE = /^epoch \d+\/\d+: \d+% \(/

/** `stdout` without its in-epoch progress lines, except the last one */
function withoutProgress(stdout: string): string {
  const lines = stdout.split('\n')
  const last = lines.findLastIndex((l) => PROGRESS_LINE.test(l))
  return lines.filter((l, i) => i === last || !PROGRESS_LINE.test(l)).join('\n')
}

function startDaemon(cliMain: string, name: string, dataDir: string, args: readonly string[]): DaemonProcess {
  // cwd in the data dir: a relative path a test hands the daemon (checkpoint.save) stays in it
  mkdirSync(dataDir, { recursive: true })
  const child = spawn(process.execPath, [cliMain, 'start', '--data-dir', dataDir, '--listen', '/ip4/127.0.0.1/tcp/0', '--compute-threads', '1', '--log-level', 'info', ...args], {
    cwd: dataDir,
    env: { PATH: process.env.PATH ?? '', HOME: dataDir },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const output = watchChildOutput(name, child)
  const { waitFor } = output
  const out = output.stdout
  const err = output.stderr

  return {
    name,
    dataDir,
    socketPath: join(dataDir, 'p2pmld.sock'),
    child,
    exited: output.exited,
    stdout: out,
    stderr: err,
    logs: () => err().split('\n').flatMap((line) => {
      if (!line.startsWith('{')) return []
      try {
        return [JSON.parse(line) as Record<string, unknown>]
      } catch {
        return []
      }
    }),
    problems: () => err().split('\n').filter((line) => {
      if (line.trim() === '') return false
      try {
        return Number((JSON.parse(line) as { level?: unknown }).level) >= 50
      } catch {
        return true
      }
    }),
    waitForStdout: (pattern, timeoutMs = 30_000) => waitFor(out, pattern, timeoutMs, 'stdout'),
    waitForLog: async (pattern, timeoutMs = 30_000) => (await waitFor(err, pattern, timeoutMs, 'log'))[0],
    address: async () => (await waitFor(out, /listening on (\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/\S+)/, 30_000, 'stdout'))[1],
    exitCode: output.exitCode,
    kill: (signal = 'SIGTERM') => {
      if (output.exitCode() === null) child.kill(signal)
    }
  }
}

export interface FinishedLine {
  readonly step: number
  /** test accuracy, % */
  readonly accuracy: number
  /** validation accuracy at the final parameters, %, when the last validation ran there */
  readonly validationAccuracy: number | undefined
  readonly digest: string
}

/** the CLI's `job finished (reason) at step S: test accuracy X %[, validation accuracy V %], digest D` line */
export function parseFinished(stdout: string): FinishedLine | undefined {
  const m = /job finished \(([\w-]+)\) at step (\d+): test accuracy ([\d.]+) %(?:, validation accuracy ([\d.]+) %)?, digest (\S+)/.exec(stdout)
  if (m === null) return undefined
  return { step: Number(m[2]), accuracy: Number(m[3]), validationAccuracy: m[4] === undefined ? undefined : Number(m[4]), digest: m[5] }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** a TCP port on 127.0.0.1 free a moment ago, for a daemon that must listen on the same port again after a restart */
export async function freePort(): Promise<number> {
  return await new Promise((resolve) => {
    const server = createServer()
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port
      server.close(() => resolve(port))
    })
  })
}

/**
 * A daemon's address known before it runs there: one started on a free port (as `name`), its
 * address read, then stopped. Start another on `listen` with `{ dataDir }` to have it at `address`.
 */
export async function addressInAdvance(fleet: DaemonFleet, name: string): Promise<{ readonly listen: string[], readonly address: string, readonly dataDir: string }> {
  const port = await freePort()
  const listen = ['--listen', `/ip4/127.0.0.1/tcp/${port}`]
  const first = fleet.start(name, listen)
  // on the port given (the harness adds a port of its own, printed first)
  const address = `/ip4/127.0.0.1/tcp/${port}/p2p/${(await first.address()).split('/p2p/')[1]}`
  first.kill('SIGTERM')
  const code = await first.exited
  if (code !== 0) throw new Error(`${name}, started to learn its address, exited with ${String(code)}\n${fleet.describe()}`)
  return { listen, address, dataDir: first.dataDir }
}

/** polls until check returns a value (not undefined) or the time is up */
export async function eventually<T>(check: () => Promise<T | undefined> | T | undefined, timeoutMs: number, what: string, intervalMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  while (Date.now() < deadline) {
    try {
      const v = await check()
      if (v !== undefined) return v
    } catch (error) {
      lastError = error
    }
    await sleep(intervalMs)
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError !== undefined ? `: ${(lastError as Error).message}` : ''}`)
}
