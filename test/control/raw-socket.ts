/** A bare newline-JSON connection for sending exactly the bytes a test wants. */
import { connect, type Socket } from 'node:net'

export interface RawConnection {
  send(data: string | Uint8Array): void
  /** the next response line, parsed */
  next(timeoutMs?: number): Promise<any>
  /** resolves when the server closes the connection */
  readonly closed: Promise<void>
  close(): void
  readonly socket: Socket
}

export async function openRaw(socketPath: string): Promise<RawConnection> {
  const socket = connect(socketPath)
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  socket.on('error', () => {})
  const lines: string[] = []
  const waiters: Array<(line: string) => void> = []
  let buffer = ''
  socket.setEncoding('utf8')
  socket.on('data', (text: string) => {
    buffer += text
    let index
    while ((index = buffer.indexOf('\n')) !== -1) {
      const line = buffer.slice(0, index)
      buffer = buffer.slice(index + 1)
      const waiter = waiters.shift()
      if (waiter !== undefined) waiter(line)
      else lines.push(line)
    }
  })
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  return {
    socket,
    closed,
    send: (data) => { socket.write(data) },
    async next(timeoutMs = 5000) {
      const line = lines.shift() ?? await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no response within ${timeoutMs} ms`)), timeoutMs)
        waiters.push((l) => { clearTimeout(timer); resolve(l) })
      })
      return JSON.parse(line)
    },
    close: () => { socket.destroy() }
  }
}

export function request(method: string, params?: unknown, id: number | string = 1): string {
  return JSON.stringify({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) }) + '\n'
}
