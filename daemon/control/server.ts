/**
 * The daemon's control socket: JSON-RPC 2.0, one request or batch per line, on a Unix socket
 * with mode 0600. Bounded per connection (line length, queued lines); a client that misbehaves
 * or vanishes only loses its own connection. Bounded in connections too, without letting idle or
 * slow clients lock `p2pmld status` out: a connection with no request in progress is closed after
 * `idleTimeoutMs`, and at the cap the connection idle longest makes room for the new one if it
 * has been idle for MIN_IDLE_TO_CLOSE_MS; otherwise (every connection handling a request, or just
 * opened and about to send one) the new one is refused with a JSON-RPC error (SERVER_BUSY) it
 * can show and retry on. Closings and refusals at the cap are logged at warn, at most once per
 * CAP_LOG_EVERY_MS with their counts since the last line (a burst of 500 clients logged 436 lines).
 */
import { chmod, lstat, unlink } from 'node:fs/promises'
import { createServer, type Server, type Socket } from 'node:net'
import { pino, type Logger } from 'pino'
import { createJSONRPCErrorResponse } from 'json-rpc-2.0'
import { createLineSplitter } from './line-splitter.js'
import { RPC_ERROR, type ControlHandlers } from './methods.js'
import { createControlRpc } from './rpc.js'
import { prepareSocketPath } from './socket-file.js'

export interface ControlServerOptions {
  readonly socketPath: string
  readonly handlers: ControlHandlers
  readonly logger?: Logger
  /** longest request line accepted; a longer one gets an error and the connection is closed */
  readonly maxLineBytes?: number
  /** connections served at once (default 64) */
  readonly maxConnections?: number
  /** a connection with no request in progress is closed after this long (default 60 s) */
  readonly idleTimeoutMs?: number
}

export interface ControlServer {
  start(): Promise<void>
  /** closes every client connection and removes the socket file */
  stop(): Promise<void>
  readonly socketPath: string
  readonly connections: number
}

export const DEFAULT_MAX_LINE_BYTES = 1024 * 1024
const DEFAULT_MAX_CONNECTIONS = 64
const DEFAULT_IDLE_TIMEOUT_MS = 60_000
/** lines read ahead of the one being handled before the socket is paused */
const MAX_QUEUED_LINES = 32
const CLOSE_GRACE_MS = 250
/**
 * At the cap, a connection idle for less than this is not closed to make room: a client that
 * connected a moment ago has its request on the way (closing it gave a burst of 70 clients 6
 * EPIPEs instead of answers)
 */
const MIN_IDLE_TO_CLOSE_MS = 250
const CAP_LOG_EVERY_MS = 10_000
/** a refused connection is kept this long without traffic for its client to read the refusal */
const REFUSED_LINGER_MS = 1000

export function createControlServer(options: ControlServerOptions): ControlServer {
  const { socketPath, handlers } = options
  const logger = (options.logger ?? pino({ level: 'silent' })).child({ component: 'control' })
  const maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES
  const rpc = createControlRpc(handlers, logger)
  const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS
  const idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS
  const sockets = new Set<Socket>()
  /** per connection: handling a request, and since when it is idle */
  const activity = new Map<Socket, { busy: () => boolean, idleSince: number }>()
  let server: Server | undefined
  let socketIno: number | undefined
  let starting: Promise<void> | undefined
  let stopping: Promise<void> | undefined
  /** closings and refusals at the cap since the last warn line about them */
  const atCap = { refused: 0, closedIdle: 0, loggedAt: -Infinity }
  const noteAtCap = (event: 'refused' | 'closedIdle'): void => {
    atCap[event]++
    const now = Date.now()
    if (now - atCap.loggedAt < CAP_LOG_EVERY_MS) return
    logger.warn({ maxConnections, refused: atCap.refused, closedIdle: atCap.closedIdle, sinceMs: Number.isFinite(atCap.loggedAt) ? now - atCap.loggedAt : undefined },
      'control connections at the cap: new ones refused (busy) or idle ones closed to make room')
    atCap.refused = 0
    atCap.closedIdle = 0
    atCap.loggedAt = now
  }

  const onConnection = (socket: Socket): void => {
    if (sockets.size >= maxConnections) {
      // the one idle longest makes room; when none has been idle a while, the newcomer is refused
      const now = Date.now()
      const idle = [...activity.entries()].filter(([, a]) => !a.busy() && now - a.idleSince >= MIN_IDLE_TO_CLOSE_MS).sort((a, b) => a[1].idleSince - b[1].idleSince)[0]
      if (idle === undefined) {
        noteAtCap('refused')
        const error = createJSONRPCErrorResponse(null, RPC_ERROR.SERVER_BUSY, `the daemon serves ${maxConnections} control connections and none is idle; retry shortly`)
        // what the client sends is read and dropped until it closes (or goes quiet): closed at
        // once, its request's write failed with EPIPE before it could read this error
        socket.on('error', () => {})
        socket.resume()
        socket.setTimeout(REFUSED_LINGER_MS, () => socket.destroy())
        socket.end(JSON.stringify(error) + '\n')
        return
      }
      noteAtCap('closedIdle')
      idle[0].destroy()
      sockets.delete(idle[0])
      activity.delete(idle[0])
    }
    sockets.add(socket)
    const queue: string[] = []
    let busy = false
    let closed = false
    // the client half-closed (e.g. `nc -U` after its input): answer what is queued, then end
    let ended = false

    const writeLine = async (text: string): Promise<void> => {
      if (closed || socket.destroyed) return
      if (!socket.write(text + '\n')) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            socket.off('drain', done)
            socket.off('close', done)
            resolve()
          }
          socket.on('drain', done)
          socket.on('close', done)
        })
      }
    }

    const drain = async (): Promise<void> => {
      if (busy) return
      busy = true
      try {
        while (queue.length > 0 && !closed) {
          const line = queue.shift() as string
          if (socket.isPaused() && queue.length < MAX_QUEUED_LINES / 2) socket.resume()
          const response = await rpc.handleLine(line)
          if (response !== null) await writeLine(response)
        }
      } finally {
        busy = false
        state.idleSince = Date.now()
      }
      if (ended && queue.length === 0 && !socket.destroyed) socket.end()
    }

    const splitter = createLineSplitter({
      maxLineBytes,
      onLine: (line) => {
        queue.push(line)
        if (queue.length >= MAX_QUEUED_LINES) socket.pause()
        void drain().catch((err: unknown) => {
          logger.error({ err }, 'control connection failed')
          socket.destroy()
        })
      },
      onOverflow: () => {
        logger.warn({ maxLineBytes }, 'control request line too long, closing the connection')
        queue.length = 0
        const error = createJSONRPCErrorResponse(null, RPC_ERROR.REQUEST_TOO_LARGE,
          `request too large: a request line may hold at most ${maxLineBytes} bytes; the connection is closed`)
        socket.end(JSON.stringify(error) + '\n')
        socket.destroySoon()
      }
    })

    const state = { busy: () => busy || queue.length > 0, idleSince: Date.now() }
    activity.set(socket, state)
    socket.setTimeout(idleTimeoutMs)
    socket.on('timeout', () => {
      if (state.busy()) return
      logger.warn({ idleTimeoutMs }, 'closing an idle control connection')
      socket.destroy()
    })
    socket.on('data', (chunk: Buffer) => {
      state.idleSince = Date.now()
      splitter.push(chunk)
    })
    socket.on('error', (err) => logger.debug({ err }, 'control client connection error'))
    socket.on('end', () => {
      // a last request without its newline (printf '...' | socat) is a request too
      splitter.end()
      ended = true
      if (!busy && queue.length === 0) socket.end()
    })
    socket.on('close', () => {
      closed = true
      queue.length = 0
      sockets.delete(socket)
      activity.delete(socket)
    })
  }

  const start = async (): Promise<void> => {
    await prepareSocketPath(socketPath)
    const srv = createServer({ allowHalfOpen: true }, onConnection)
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject)
      srv.listen(socketPath, () => {
        srv.off('error', reject)
        resolve()
      })
    })
    srv.on('error', (err) => logger.error({ err }, 'control server error'))
    try {
      await chmod(socketPath, 0o600)
      socketIno = (await lstat(socketPath)).ino
    } catch (err) {
      srv.close()
      throw err
    }
    server = srv
    logger.info({ socketPath }, 'control socket listening')
  }

  const stop = async (srv: Server): Promise<void> => {
    const closed = new Promise<void>((resolve) => srv.close(() => resolve()))
    const open = [...sockets]
    for (const socket of open) socket.end()
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      Promise.all(open.map(async (socket) => await new Promise<void>((resolve) => {
        if (socket.destroyed) resolve()
        else socket.once('close', () => resolve())
      }))),
      new Promise<void>((resolve) => { timer = setTimeout(resolve, CLOSE_GRACE_MS) })
    ])
    clearTimeout(timer)
    for (const socket of sockets) socket.destroy()
    await closed
    await removeOwnSocketFile()
    logger.info({ socketPath }, 'control socket closed')
  }

  // never unlink a socket another daemon created at the same path after we started
  const removeOwnSocketFile = async (): Promise<void> => {
    try {
      const stats = await lstat(socketPath)
      if (stats.isSocket() && stats.ino === socketIno) await unlink(socketPath)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    } finally {
      socketIno = undefined
    }
  }

  return {
    socketPath,
    get connections(): number {
      return sockets.size
    },
    async start(): Promise<void> {
      if (stopping !== undefined) await stopping
      if (server !== undefined) return
      starting ??= start().finally(() => { starting = undefined })
      await starting
    },
    async stop(): Promise<void> {
      if (starting !== undefined) await starting.catch(() => undefined)
      if (stopping !== undefined) return await stopping
      const srv = server
      if (srv === undefined) return
      server = undefined
      stopping = stop(srv).finally(() => { stopping = undefined })
      await stopping
    }
  }
}
