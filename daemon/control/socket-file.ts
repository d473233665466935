/**
 * The control socket's file: a stale one left by a crashed daemon is removed, a live one
 * (a daemon answers) is never touched.
 */
import { lstat, mkdir, unlink } from 'node:fs/promises'
import { connect } from 'node:net'
import { dirname } from 'node:path'
import { daemonFlagFor } from '../../config/daemon-config.js'

export class ControlSocketInUseError extends Error {
  override name = 'ControlSocketInUseError'
}

export class ControlSocketPathError extends Error {
  override name = 'ControlSocketPathError'
}

const PROBE_TIMEOUT_MS = 1000

/** true if something accepts connections at socketPath */
export async function isSocketLive(socketPath: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<boolean> {
  return await new Promise<boolean>((resolve, reject) => {
    const socket = connect(socketPath)
    const timer = setTimeout(() => {
      socket.destroy()
      // a listener that accepts nothing within the timeout is hung, not gone: treat as live
      resolve(true)
    }, timeoutMs)
    socket.once('connect', () => {
      clearTimeout(timer)
      socket.destroy()
      resolve(true)
    })
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      socket.destroy()
      if (err.code === 'ECONNREFUSED' || err.code === 'ENOENT') resolve(false)
      else reject(new ControlSocketPathError(`cannot probe control socket ${socketPath}: ${err.message}`))
    })
  })
}

/** Creates the parent directory (0700) and removes a stale socket file; refuses a live one. */
export async function prepareSocketPath(socketPath: string): Promise<void> {
  await mkdir(dirname(socketPath), { recursive: true, mode: 0o700 })
  let stats
  try {
    stats = await lstat(socketPath)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
    throw err
  }
  if (!stats.isSocket()) {
    throw new ControlSocketPathError(`${socketPath} exists and is not a socket: remove it or choose another path with --socket`)
  }
  if (await isSocketLive(socketPath)) {
    // named as the user names it: a data dir's socket by --data-dir, another by --socket
    const flag = daemonFlagFor(socketPath)
    throw new ControlSocketInUseError(`a daemon is already running at ${socketPath}: stop it with \`p2pmld stop ${flag}\` or use another ${flag.split(' ')[0]}`)
  }
  try {
    await unlink(socketPath)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
}
