/**
 * Fuzz: thousands of random, malformed, oversized and abandoned requests on several
 * connections while a well-behaved client keeps calling status and must get right answers.
 */
import { connect, type Socket } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect, it } from 'vitest'
import { createRng, type Rng } from '../../ml/core/rng.js'
import { CONTROL_METHOD_NAMES, createControlClient, createControlServer, RPC_ERROR } from '../../daemon/control/index.js'
import { createMemoryDaemon, PEER_ID } from './memory-handlers.js'

const LINES = 3000
const WORKERS = 6
const MAX_LINE = 64 * 1024
const KNOWN_CODES = new Set<number>(Object.values(RPC_ERROR))

function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[rng.nextInt(items.length)]
}

const WEIRD_VALUES: unknown[] = [null, true, 0, -1, 1e308, '', 'x', [], {}, [1, 2], { a: { b: null } }, 'status', -32700]

function randomValue(rng: Rng, depth = 0): unknown {
  if (depth > 2 || rng.nextFloat() < 0.5) return pick(rng, WEIRD_VALUES)
  if (rng.nextFloat() < 0.5) return Array.from({ length: rng.nextInt(4) }, () => randomValue(rng, depth + 1))
  const out: Record<string, unknown> = {}
  for (let i = rng.nextInt(4); i > 0; i--) out[pick(rng, ['config', 'jobId', 'path', 'model', 'epochs', 'x'])] = randomValue(rng, depth + 1)
  return out
}

/** one line of garbage (may itself contain newlines, hence several "lines") */
function randomPayload(rng: Rng): string | Buffer {
  const valid = JSON.stringify({ jsonrpc: '2.0', id: rng.nextInt(1000), method: pick(rng, CONTROL_METHOD_NAMES), params: {} })
  // oversized lines close the connection: keep them rare so most traffic is parsed
  if (rng.nextFloat() < 0.02) return '{"jsonrpc":"2.0","id":1,"method":"job.submit","params":{"config":{"model":"' + 'm'.repeat(MAX_LINE + rng.nextInt(MAX_LINE)) + '"}}}\n'
  switch (rng.nextInt(9)) {
    case 0: return Buffer.concat([Buffer.from(Array.from({ length: 1 + rng.nextInt(300) }, () => rng.nextInt(256))), Buffer.from('\n')])
    case 1: return valid.slice(0, rng.nextInt(valid.length)) + '\n'
    case 2: return JSON.stringify({ jsonrpc: pick(rng, ['2.0', '1.0', 2, null]), id: randomValue(rng), method: pick(rng, [...CONTROL_METHOD_NAMES, 'nope', 7, '']), params: randomValue(rng) }) + '\n'
    case 3: return JSON.stringify({ jsonrpc: '2.0', id: rng.nextInt(100), method: pick(rng, CONTROL_METHOD_NAMES), params: randomValue(rng) }) + '\n'
    case 4: return JSON.stringify(Array.from({ length: rng.nextInt(5) }, () => ({ jsonrpc: '2.0', id: rng.nextInt(9), method: pick(rng, CONTROL_METHOD_NAMES) }))) + '\n'
    case 5: return JSON.stringify(randomValue(rng)) + '\n'
    case 6: return valid + '\n'
    case 7: return JSON.stringify({ jsonrpc: '2.0', id: rng.nextInt(100), method: pick(rng, ['nope', 'job', 'status ', 'constructor', 'toString']) }) + '\n'
    default: return JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'job.submit', params: { config: { model: 'mlp', epochs: randomValue(rng), optimizer: randomValue(rng) } } }) + '\n'
  }
}

interface FuzzConnection { socket: Socket, responses: unknown[], closed: boolean }

async function openFuzz(socketPath: string): Promise<FuzzConnection> {
  const socket = connect(socketPath)
  const conn: FuzzConnection = { socket, responses: [], closed: false }
  let buffer = ''
  socket.setEncoding('utf8')
  socket.on('data', (text: string) => {
    buffer += text
    let index
    while ((index = buffer.indexOf('\n')) !== -1) {
      conn.responses.push(JSON.parse(buffer.slice(0, index)))
      buffer = buffer.slice(index + 1)
    }
  })
  socket.on('error', () => {})
  socket.on('close', () => { conn.closed = true })
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  return conn
}

function checkResponse(response: unknown): void {
  const list = Array.isArray(response) ? response : [response]
  for (const r of list as Array<Record<string, any>>) {
    expect(r.jsonrpc).toBe('2.0')
    expect('id' in r).toBe(true)
    if ('error' in r) {
      expect(KNOWN_CODES.has(r.error.code), JSON.stringify(r)).toBe(true)
      expect(r.error.message.length).toBeGreaterThan(0)
      expect(r.error.code).not.toBe(RPC_ERROR.INTERNAL_ERROR)
    } else {
      expect('result' in r).toBe(true)
    }
  }
}

it('keeps answering status correctly under a flood of malformed traffic', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'p2pmld-fuzz-'))
  const socketPath = join(dir, 'p2pmld.sock')
  const daemon = createMemoryDaemon()
  const server = createControlServer({ socketPath, handlers: daemon, maxLineBytes: MAX_LINE })
  await server.start()
  const watcher = createControlClient(socketPath, { timeoutMs: 2000 })
  try {
    let fuzzing = true
    let statusCalls = 0
    let lastStep = 0
    const watch = (async () => {
      while (fuzzing) {
        const status = await watcher.status()
        expect(status.peerId).toBe(PEER_ID)
        expect(status.step).toBeGreaterThan(lastStep)
        lastStep = status.step
        statusCalls++
      }
    })()

    let sent = 0
    let disconnects = 0
    let oversize = 0
    const responses: unknown[] = []
    const fuzzWorker = async (seed: number): Promise<void> => {
      const rng = createRng(seed)
      let conn = await openFuzz(socketPath)
      while (sent < LINES) {
        if (conn.closed || rng.nextFloat() < 0.02) {
          if (!conn.closed) disconnects++
          conn.socket.destroy()
          responses.push(...conn.responses)
          conn = await openFuzz(socketPath)
        }
        const payload = randomPayload(rng)
        sent++
        conn.socket.write(payload)
        if (payload.length > MAX_LINE) {
          oversize++
          await new Promise<void>((resolve) => conn.closed ? resolve() : conn.socket.once('close', () => resolve()))
        }
        if (sent % 20 === 0) await new Promise((resolve) => setImmediate(resolve))
      }
      await new Promise((resolve) => setTimeout(resolve, 100))
      conn.socket.destroy()
      responses.push(...conn.responses)
    }
    await Promise.all(Array.from({ length: WORKERS }, (_, i) => fuzzWorker(1000 + i)))
    fuzzing = false
    await watch

    expect(sent).toBeGreaterThanOrEqual(LINES)
    expect(oversize).toBeGreaterThan(20)
    expect(disconnects).toBeGreaterThan(10)
    expect(statusCalls).toBeGreaterThan(20)
    // abrupt disconnects and oversized lines drop what was queued on that connection
    expect(responses.length).toBeGreaterThan(LINES / 3)
    for (const response of responses) checkResponse(response)
    // every error class showed up
    const codes = new Set((responses.flat() as Array<{ error?: { code: number } }>).map((r) => r.error?.code))
    for (const code of [RPC_ERROR.PARSE_ERROR, RPC_ERROR.INVALID_REQUEST, RPC_ERROR.METHOD_NOT_FOUND, RPC_ERROR.INVALID_PARAMS, RPC_ERROR.REQUEST_TOO_LARGE]) {
      expect(codes.has(code), `code ${code}`).toBe(true)
    }
    // and afterwards: no leaked connections, still serving
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(server.connections).toBe(1)
    expect((await watcher.status()).peerId).toBe(PEER_ID)
  } finally {
    await watcher.close()
    await server.stop()
    rmSync(dir, { recursive: true, force: true })
  }
})
