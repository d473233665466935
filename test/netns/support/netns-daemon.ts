/**
 * `p2pmld start` as a real process inside a network namespace (`ip netns exec` execs node in
 * place, so the child's pid is the daemon's): its stdout (the CLI's lines) and stderr (pino JSON
 * logs), waits on either, and a fleet that SIGKILLs every child it started.
 */
import { watchChildOutput } from '../../support/child-output.js'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { NetnsHost, NetnsTopology } from './netns-topology.js'

export interface NetnsDaemon {
  readonly name: string
  readonly host: NetnsHost
  readonly socketPath: string
  readonly exited: Promise<number | null>
  stdout(): string
  stderr(): string
  /** resolves with the first match of pattern on stdout */
  waitForStdout(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray>
  /** resolves with the first match of pattern in the logs, searching from character `from` on */
  waitForLog(pattern: RegExp, timeoutMs: number, from?: number): Promise<RegExpMatchArray>
  exitCode(): number | null
}

export interface NetnsFleet {
  start(name: string, host: NetnsHost, args: readonly string[]): NetnsDaemon
  /** SIGKILL every child still running, wait for them, remove the data dirs; never throws */
  cleanup(): Promise<void>
  /** stdout + log tail of every daemon, for failure messages */
  describe(): string
}

/** `prepareCli(dir)` returns the cli/main.js to run, e.g. a private copy of dist/ made in dir */
export function createNetnsFleet(topology: NetnsTopology, prepareCli: (dir: string) => string): NetnsFleet {
  const root = mkdtempSync(join(tmpdir(), 'p2p-netns-'))
  const cliMain = prepareCli(root)
  const daemons: Array<NetnsDaemon & { child: ChildProcess }> = []
  const killAll = (): void => {
    for (const d of daemons) if (d.exitCode() === null) d.child.kill('SIGKILL')
  }
  process.once('exit', killAll)
  return {
    start(name, host, args) {
      const dataDir = join(root, name)
      mkdirSync(dataDir, { recursive: true })
      const [cmd, ...prefix] = topology.execPrefix(host)
      const child = spawn(cmd, [...prefix, process.execPath, cliMain, 'start', '--data-dir', dataDir,
        '--listen', `/ip4/${host.address}/tcp/4001`, '--compute-threads', '1', '--log-level', 'info', '--exit-when-done', ...args], {
        cwd: dataDir,
        env: { PATH: process.env.PATH ?? '', HOME: dataDir },
        stdio: ['ignore', 'pipe', 'pipe']
      })
      const d = watch(name, host, join(dataDir, 'p2pmld.sock'), child)
      daemons.push(d)
      return d
    },
    async cleanup() {
      process.off('exit', killAll)
      killAll()
      await Promise.all(daemons.map((d) => d.exited))
      // P2PMLD_NETNS_LOGS=<dir> keeps every daemon's output for a look at the timeline
      const keep = process.env.P2PMLD_NETNS_LOGS
      if (keep !== undefined && keep !== '') {
        mkdirSync(keep, { recursive: true })
        for (const d of daemons) writeFileSync(join(keep, `${d.name}.log`), `${d.stdout()}\n${d.stderr()}`)
      }
      rmSync(root, { recursive: true, force: true })
    },
    describe: () => daemons.map((d) => `--- ${d.name} ${d.host.address} (exit ${d.exitCode()})\n${d.stdout()}\n${d.stderr().split('\n').slice(-12).join('\n')}`).join('\n')
  }
}

function watch(name: string, host: NetnsHost, socketPath: string, child: ChildProcess): NetnsDaemon & { child: ChildProcess } {
  const output = watchChildOutput(name, child)

  return {
    name,
    host,
    socketPath,
    child,
    exited: output.exited,
    stdout: output.stdout,
    stderr: output.stderr,
    waitForStdout: (pattern, timeoutMs) => output.waitFor(output.stdout, pattern, timeoutMs, 'stdout'),
    waitForLog: (pattern, timeoutMs, from = 0) => output.waitFor(() => output.stderr().slice(from), pattern, timeoutMs, 'log'),
    exitCode: output.exitCode
  }
}
