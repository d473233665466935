/** Waiting, after `shutdown` was answered, for a daemon to have stopped. */
import { existsSync, readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

const POLL_MS = 50

export interface WaitUntilStoppedOptions {
  /** the daemon's control socket: it closes once the daemon has saved its state and left its job */
  readonly socketPath: string
  /** the daemon's process, when its reply named one (`p2pmld start`'s): it exits last */
  readonly pid?: number | undefined
  /** give up at this time (Date.now() ms) */
  readonly deadline: number
  /** the whole wait the caller allowed (the client's --timeout), for the message */
  readonly timeoutMs: number
}

/**
 * Resolves once the daemon's control socket refuses connections and, when
 * `pid` is given, that process has exited (signal 0 finds no such process). Throws past
 * `deadline`, naming the process to kill and the option that waits longer.
 */
export async function waitUntilStopped(options: WaitUntilStoppedOptions): Promise<void> {
  const { deadline } = options
  const overdue = (what: string): Error => new Error(
    `the daemon at ${options.socketPath} was asked to stop but ${what} after ${options.timeoutMs} ms` +
    ` (it finishes its step and saves its state first): wait longer with --timeout <ms>` +
    (options.pid !== undefined ? `, or end it with kill ${options.pid}` : ''))
  while (await socketAnswers(options.socketPath)) {
    if (Date.now() >= deadline) throw overdue('its control socket still answers')
    await sleep(POLL_MS)
  }
  if (options.pid !== undefined) {
    while (processExists(options.pid)) {
      if (Date.now() >= deadline) throw overdue(`its process ${options.pid} is still running`)
      await sleep(POLL_MS)
    }
  }
}

async function socketAnswers(socketPath: string): Promise<boolean> {
  return await new Promise<boolean>((resolve) => {
    const socket = connect(socketPath)
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => { socket.destroy(); resolve(false) })
  })
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (error) {
    // EPERM: it exists, owned by another user
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
  return !isZombie(pid)
}

/**
 * Whether the process has exited but its parent has not reaped it yet (Linux: state Z in
 * /proc/<pid>/stat). Signal 0 still finds such a process; a daemon started from a shell that has
 * gone is reaped by init, which here took ~2 s. Elsewhere (no /proc) false.
 */
function isZombie(pid: number): boolean {
  let stat: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch (error) {
    // gone since the signal; or no /proc on this system
    return (error as NodeJS.ErrnoException).code === 'ENOENT' && existsSync('/proc/self/stat')
  }
  // "<pid> (<command, which may hold ') '>) <state> ..."
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z'
}
