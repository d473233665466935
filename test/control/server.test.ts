import { spawn } from 'node:child_process'
import { existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  ControlRpcError,
  ControlSocketInUseError,
  ControlSocketPathError,
  createControlClient,
  createControlServer,
  DaemonNotRunningError,
  RPC_ERROR,
  type ControlClient,
  type ControlServer
} from '../../daemon/control/index.js'
import { createMemoryDaemon, PEER_ID, type MemoryDaemon } from './memory-handlers.js'
import { invalidStateError } from '../../daemon/control/methods.js'
import { openRaw, request } from './raw-socket.js'
import { pino } from 'pino'

let dir: string
let socketPath: string
let daemon: MemoryDaemon
let server: ControlServer
let client: ControlClient

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'p2pmld-ctl-'))
  socketPath = join(dir, 'p2pmld.sock')
  daemon = createMemoryDaemon()
  server = createControlServer({ socketPath, handlers: daemon })
  await server.start()
  client = createControlClient(socketPath, { timeoutMs: 5000 })
})

afterEach(async () => {
  await client.close()
  await server.stop()
  rmSync(dir, { recursive: true, force: true })
})

async function rpcError(promise: Promise<unknown>): Promise<ControlRpcError> {
  const err = await promise.then(() => undefined, (e: unknown) => e)
  expect(err).toBeInstanceOf(ControlRpcError)
  return err as ControlRpcError
}

describe('control methods round-trip', () => {
  it('answers every method with typed results', async () => {
    const idle = await client.status()
    expect(idle).toMatchObject({ peerId: PEER_ID, jobId: null, state: 'idle', loss: null })

    const { peers } = await client.peers()
    expect(peers.map((p) => p.suspected)).toEqual([false, true])
    expect(peers[1].lastSeen).toBeNull()

    const submitted = await client.submitJob({ id: 'mnist-1', model: 'mlp', optimizer: { type: 'adam', lr: 0.01 } })
    expect(submitted).toEqual({ jobId: 'mnist-1', state: 'training' })
    // the server parsed the config with the job schema: defaults are filled in
    expect(daemon.submitted[0].optimizer).toEqual({ type: 'adam', lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 })
    expect(daemon.submitted[0].aggregation.rule).toBe('trimmed-mean')

    expect(await client.pauseJob()).toEqual({ jobId: 'mnist-1', state: 'paused' })
    expect((await client.status()).state).toBe('paused')
    expect(await client.resumeJob({ jobId: 'mnist-1' })).toEqual({ jobId: 'mnist-1', state: 'training' })

    const metrics = await client.metrics()
    expect(metrics.stages.map((s) => s.stage)).toEqual(['compute', 'aggregate'])
    expect(metrics.network.bytesSent).toBe(123456)
    expect(metrics.contributors).toEqual({ last: 3, mean: 2.9, min: 2, max: 3 })

    expect(await client.saveCheckpoint({ path: '/tmp/x.ckpt' })).toMatchObject({ path: '/tmp/x.ckpt', bytes: 4096 })
    expect(await client.stopJob()).toEqual({ jobId: 'mnist-1', state: 'stopped' })
    expect(await client.shutdown()).toEqual({ stopping: true })
    expect(daemon.shutdownCalls).toBe(1)
  })

  it('rejects invalid params naming the field (-32602)', async () => {
    const bad = await rpcError(client.submitJob({ model: 'mlp', optimizer: { type: 'sgd', lr: -1 }, epochs: 0 }))
    expect(bad.code).toBe(RPC_ERROR.INVALID_PARAMS)
    expect(bad.message).toContain('config.optimizer.lr')
    expect(bad.message).toContain('config.epochs')
    expect(daemon.submitted).toHaveLength(0)

    const unknown = await rpcError(client.call('status', { verbose: true } as never))
    expect(unknown.code).toBe(RPC_ERROR.INVALID_PARAMS)
    expect(unknown.message).toContain('unknown field verbose')
    // a misspelt field gets the nearest valid one, as the CLI's config errors do
    const typo = await rpcError(client.call('checkpoint.save', { pth: '/tmp/x' } as never))
    expect(typo.message).toBe('invalid params for checkpoint.save: unknown field pth: did you mean path?')
    const nested = await rpcError(client.submitJob({ model: 'mlp', optimizer: { type: 'sgd', lr: 0.1, momentun: 0.9 } } as never))
    expect(nested.message).toContain('unknown field config.optimizer.momentun: did you mean momentum?')

    const wrongType = await rpcError(client.call('checkpoint.save', { path: 42 } as never))
    expect(wrongType.code).toBe(RPC_ERROR.INVALID_PARAMS)
    expect(wrongType.message).toMatch(/path: .*expected string/)
  })

  it('maps handler refusals to application codes and failures to -32603', async () => {
    const noJob = await rpcError(client.stopJob())
    expect(noJob.code).toBe(RPC_ERROR.NO_JOB)
    expect(noJob.message).toContain('no job running')

    await client.submitJob({ id: 'a' })
    const wrongJob = await rpcError(client.pauseJob({ jobId: 'b' }))
    expect(wrongJob.code).toBe(RPC_ERROR.JOB_NOT_FOUND)
    expect(wrongJob.message).toBe("job b not found: this daemon's job is a")

    const notPaused = await rpcError(client.resumeJob())
    expect(notPaused.code).toBe(RPC_ERROR.INVALID_STATE)
    expect(notPaused.message).toBe('cannot resume job a: it is training; p2pmld job pause pauses it')
    // a stopped job's message said nothing of how it goes on (its daemon's restart resumes it)
    expect(invalidStateError('resume', 'j', 'stopped').message).toBe('cannot resume job j: it is stopped; a stopped job goes on when its daemon starts again (p2pmld stop, then p2pmld start with the same --data-dir), from its checkpoint or from the members that carried it on')
    expect(invalidStateError('pause', 'j', 'paused').message).toBe('cannot pause job j: it is paused; p2pmld job resume goes on')

    daemon.failMetrics = true
    const internal = await rpcError(client.metrics())
    expect(internal.code).toBe(RPC_ERROR.INTERNAL_ERROR)
    expect(internal.message).toBe('internal error in metrics: stage recorder exploded')
    // the connection survives all of it
    expect((await client.status()).jobId).toBe('a')
  })
})

describe('malformed requests', () => {
  it('answers each with the right JSON-RPC error code', async () => {
    const raw = await openRaw(socketPath)
    const cases: Array<[string, number, string | number | null]> = [
      ['{"jsonrpc":"2.0","id":1,"method":"status"', RPC_ERROR.PARSE_ERROR, null],
      ['not json at all', RPC_ERROR.PARSE_ERROR, null],
      ['{"jsonrpc":"1.0","id":2,"method":"status"}', RPC_ERROR.INVALID_REQUEST, 2],
      ['{"jsonrpc":"2.0","id":3,"method":7}', RPC_ERROR.INVALID_REQUEST, 3],
      ['{"jsonrpc":"2.0","id":{"x":1},"method":"status"}', RPC_ERROR.INVALID_REQUEST, null],
      ['{"jsonrpc":"2.0","id":4,"method":"status","params":"yes"}', RPC_ERROR.INVALID_REQUEST, 4],
      ['42', RPC_ERROR.INVALID_REQUEST, null],
      ['null', RPC_ERROR.INVALID_REQUEST, null],
      ['"status"', RPC_ERROR.INVALID_REQUEST, null],
      ['[]', RPC_ERROR.INVALID_REQUEST, null],
      ['{"jsonrpc":"2.0","id":5,"method":"reboot"}', RPC_ERROR.METHOD_NOT_FOUND, 5],
      ['{"jsonrpc":"2.0","id":6,"method":"__proto__"}', RPC_ERROR.METHOD_NOT_FOUND, 6],
      ['{"jsonrpc":"2.0","id":7,"method":"job.stop","params":["x"]}', RPC_ERROR.INVALID_PARAMS, 7],
      ['{"jsonrpc":"2.0","id":8,"method":"job.submit","params":{"config":{"batchSize":"big"}}}', RPC_ERROR.INVALID_PARAMS, 8],
      ['{"jsonrpc":"2.0","id":9,"method":"job.submit"}', RPC_ERROR.INVALID_PARAMS, 9]
    ]
    for (const [line, code, id] of cases) {
      raw.send(line + '\n')
      const response = await raw.next()
      expect(response, line).toMatchObject({ jsonrpc: '2.0', id, error: { code } })
      expect(typeof response.error.message).toBe('string')
    }
    raw.send('{"jsonrpc":"2.0","id":10,"method":"reboot"}\n')
    expect((await raw.next()).error.message).toContain('use one of status, peers, job.submit')
    raw.send('{"jsonrpc":"2.0","id":12,"method":"job.pasue"}\n')
    expect((await raw.next()).error.message).toMatch(/^unknown method "job\.pasue" \(did you mean job\.pause\?\): use one of /)
    raw.send('{"jsonrpc":"2.0","id":11,"method":"job.submit","params":{"config":{"batchSize":"big"}}}\n')
    expect((await raw.next()).error.message).toContain('config.batchSize')
    raw.close()
  })

  it('answers batches per element and stays silent for notifications', async () => {
    const raw = await openRaw(socketPath)
    raw.send('[{"jsonrpc":"2.0","id":"a","method":"status"},{"jsonrpc":"2.0","id":"b","method":"nope"},5,{"jsonrpc":"2.0","method":"status"}]\n')
    const batch = await raw.next()
    expect(batch).toHaveLength(3)
    expect(batch[0]).toMatchObject({ id: 'a', result: { peerId: PEER_ID } })
    expect(batch[1]).toMatchObject({ id: 'b', error: { code: RPC_ERROR.METHOD_NOT_FOUND } })
    expect(batch[2]).toMatchObject({ id: null, error: { code: RPC_ERROR.INVALID_REQUEST } })

    raw.send('{"jsonrpc":"2.0","method":"job.pause"}\n\n   \n' + request('peers', undefined, 99))
    expect(await raw.next()).toMatchObject({ id: 99, result: { peers: expect.any(Array) } })
    raw.close()
  })

  it('refuses a line over the limit, drops that connection and keeps serving', async () => {
    const raw = await openRaw(socketPath)
    raw.send('{"jsonrpc":"2.0","id":1,"method":"status","params":{"pad":"' + 'x'.repeat(1024 * 1024 + 10))
    const response = await raw.next()
    expect(response).toMatchObject({ id: null, error: { code: RPC_ERROR.REQUEST_TOO_LARGE } })
    expect(response.error.message).toContain('1048576 bytes')
    await raw.closed
    expect((await client.status()).peerId).toBe(PEER_ID)
  })

  it('survives a client that vanishes mid-request', async () => {
    daemon.statusDelayMs = 100
    for (let i = 0; i < 5; i++) {
      const raw = await openRaw(socketPath)
      raw.send(request('status'))
      raw.close()
    }
    await new Promise((resolve) => setTimeout(resolve, 150))
    daemon.statusDelayMs = 0
    expect((await client.status()).peerId).toBe(PEER_ID)
    expect(server.connections).toBe(1)
  })

  it('serves many clients at once', async () => {
    const clients = Array.from({ length: 40 }, () => createControlClient(socketPath))
    const results = await Promise.all(clients.map(async (c, i) => {
      const answers = await Promise.all([c.status(), c.peers(), c.metrics(), i % 2 === 0 ? c.status() : c.peers()])
      await c.close()
      return answers
    }))
    expect(results).toHaveLength(40)
    for (const [status, peers, metrics] of results) {
      expect(status).toMatchObject({ peerId: PEER_ID })
      expect((peers as { peers: unknown[] }).peers).toHaveLength(2)
      expect((metrics as { stages: unknown[] }).stages).toHaveLength(2)
    }
  })
})

describe('socket file lifecycle', () => {
  it('creates the socket with mode 0600 and removes it on stop', async () => {
    expect(lstatSync(socketPath).isSocket()).toBe(true)
    expect(statSync(socketPath).mode & 0o777).toBe(0o600)
    await client.status()
    await server.stop()
    await server.stop()
    expect(existsSync(socketPath)).toBe(false)
    await expect(createControlClient(socketPath).status()).rejects.toBeInstanceOf(DaemonNotRunningError)
    await server.start()
    await server.start()
    expect((await createControlClient(socketPath).status()).peerId).toBe(PEER_ID)
  })

  it('replaces a stale socket left by a killed process', async () => {
    await server.stop()
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(socketPath)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] })
    try {
      await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()))
      child.kill('SIGKILL')
      await new Promise((resolve) => child.once('exit', resolve))
    } finally {
      child.kill('SIGKILL')
    }
    expect(lstatSync(socketPath).isSocket()).toBe(true)
    await server.start()
    expect((await client.status()).peerId).toBe(PEER_ID)
  })

  it('refuses to start where a live daemon answers, and leaves it running', async () => {
    const second = createControlServer({ socketPath, handlers: createMemoryDaemon() })
    const err = await second.start().then(() => undefined, (e: unknown) => e)
    expect(err).toBeInstanceOf(ControlSocketInUseError)
    // a data dir's socket is named by its --data-dir (the flag its user typed), another by --socket
    expect((err as Error).message).toBe(`a daemon is already running at ${socketPath}: stop it with \`p2pmld stop --data-dir ${dirname(socketPath)}\` or use another --data-dir`)
    const elsewhere = join(dirname(socketPath), 'other.sock')
    const third = createControlServer({ socketPath: elsewhere, handlers: createMemoryDaemon() })
    await third.start()
    const fourth = createControlServer({ socketPath: elsewhere, handlers: createMemoryDaemon() })
    const err2 = await fourth.start().then(() => undefined, (e: unknown) => e)
    expect((err2 as Error).message).toBe(`a daemon is already running at ${elsewhere}: stop it with \`p2pmld stop --socket ${elsewhere}\` or use another --socket`)
    await fourth.stop()
    await third.stop()
    await second.stop()
    expect((await client.status()).peerId).toBe(PEER_ID)
  })

  it('refuses to remove a file that is not a socket', async () => {
    const path = join(dir, 'not-a-socket')
    writeFileSync(path, 'precious')
    const other = createControlServer({ socketPath: path, handlers: daemon })
    await expect(other.start()).rejects.toBeInstanceOf(ControlSocketPathError)
    expect(readFileSync(path, 'utf8')).toBe('precious')
  })

  it('closes connected clients on stop', async () => {
    const raw = await openRaw(socketPath)
    raw.send(request('status'))
    await raw.next()
    await server.stop()
    await raw.closed
    expect(raw.socket.destroyed).toBe(true)
  })

  it('answers shutdown before the daemon stops its own control server', async () => {
    const path = join(dir, 'self-stop.sock')
    const handlers = createMemoryDaemon()
    const own = createControlServer({ socketPath: path, handlers })
    handlers.shutdown = () => {
      setImmediate(() => { void own.stop() })
      return { stopping: true as const }
    }
    await own.start()
    const c = createControlClient(path)
    expect(await c.shutdown()).toEqual({ stopping: true })
    for (let i = 0; i < 50 && existsSync(path); i++) await new Promise((resolve) => setTimeout(resolve, 10))
    expect(existsSync(path)).toBe(false)
    await c.close()
  })

  it('answers a client that half-closes after writing (nc -U style)', async () => {
    daemon.statusDelayMs = 50 // the answer is ready only after the client's FIN arrived
    const raw = await openRaw(socketPath)
    raw.send(request('status', undefined, 'a') + request('peers', undefined, 'b'))
    raw.socket.end()
    expect((await raw.next()).id).toBe('a')
    expect((await raw.next()).id).toBe('b')
    await raw.closed
  })

  it('answers a last request sent without its newline once the client half-closes (printf ... | socat)', async () => {
    const raw = await openRaw(socketPath)
    raw.send(request('status', undefined, 'a') + request('peers', undefined, 'b').trimEnd())
    raw.socket.end()
    expect((await raw.next()).id).toBe('a')
    expect((await raw.next())).toMatchObject({ id: 'b', result: { peers: expect.any(Array) } })
    await raw.closed
  })

  it('shows the daemon\'s reason when it refuses a request line as too large', async () => {
    const small = createControlServer({ socketPath: join(dir, 'small.sock'), handlers: daemon, maxLineBytes: 2048 })
    await small.start()
    const c = createControlClient(join(dir, 'small.sock'), { timeoutMs: 5000 })
    try {
      const err = await c.submitJob({ model: 'x'.repeat(4096) } as never).then(() => undefined, (e: unknown) => e)
      expect((err as Error).message).toContain('request too large: a request line may hold at most 2048 bytes')
    } finally {
      await c.close()
      await small.stop()
    }
  })

  it('tells the user how to start a daemon when none runs', async () => {
    const missing = createControlClient(join(dir, 'nowhere', 'p2pmld.sock'))
    const err = await missing.status().then(() => undefined, (e: unknown) => e)
    expect(err).toBeInstanceOf(DaemonNotRunningError)
    expect((err as Error).message).toBe(`no daemon is running at ${join(dir, 'nowhere', 'p2pmld.sock')}: start one with \`p2pmld start --data-dir ${join(dir, 'nowhere')}\``)
  })
})

describe('connection limits', () => {
  it('idle connections cannot lock out status: at the cap the one idle longest is closed, and idle ones time out', async () => {
    const warnings: string[] = []
    const logger = pino({ level: 'warn' }, { write: (line: string) => { warnings.push(String(JSON.parse(line).msg)) } })
    const path = join(dir, 'capped.sock')
    const capped = createControlServer({ socketPath: path, handlers: daemon, maxConnections: 8, idleTimeoutMs: 600, logger })
    await capped.start()
    try {
      // 128 idle clients (what locked out status before), opened one after another
      const idle = []
      for (let i = 0; i < 128; i++) idle.push(await openRaw(path))
      // connections idle a moment only are not closed to make room (their request may be on the way)
      await new Promise((resolve) => setTimeout(resolve, 300))
      const c = createControlClient(path, { timeoutMs: 5000 })
      expect((await c.status()).peerId).toBe(PEER_ID)
      await c.close()
      expect(capped.connections).toBeLessThanOrEqual(8)
      // logged, but not once per connection
      const capLines = warnings.filter((w) => w.includes('control connections at the cap'))
      expect(capLines.length).toBeGreaterThanOrEqual(1)
      expect(capLines.length).toBeLessThan(5)
      // the ones still open (the first ones, but the one closed for status) time out without a request
      await Promise.all(idle.map(async (r) => await r.closed))
      expect(warnings).toContain('closing an idle control connection')
      for (let i = 0; i < 40 && capped.connections > 0; i++) await new Promise((resolve) => setTimeout(resolve, 50))
      expect(capped.connections).toBe(0)
    } finally {
      await capped.stop()
    }
  })

  it('a burst of clients over the cap, each sending at once: refused ones read the busy error (no EPIPE), and the client retries', async () => {
    const path = join(dir, 'burst.sock')
    const capped = createControlServer({ socketPath: path, handlers: daemon, maxConnections: 8 })
    await capped.start()
    daemon.statusDelayMs = 50
    try {
      // raw clients writing as soon as they connect: 6 of 70 got EPIPE and nothing else (the
      // refused connection was closed before their request arrived)
      const raw = await Promise.all(Array.from({ length: 24 }, async () => await openRaw(path)))
      for (const r of raw) r.send(request('status'))
      const answers = await Promise.all(raw.map(async (r) => await r.next().then((a) => a.error?.code ?? 'answered', (e: unknown) => String(e))))
      expect(answers.filter((a) => a !== 'answered' && a !== RPC_ERROR.SERVER_BUSY)).toEqual([])
      expect(answers.filter((a) => a === RPC_ERROR.SERVER_BUSY).length).toBeGreaterThan(0)
      for (const r of raw) r.close()
      // the CLI's client sends a call the daemon refused as busy again: every one is answered
      const outcomes = await Promise.all(Array.from({ length: 24 }, async (_, i) => {
        const c = createControlClient(path, { timeoutMs: 5000 })
        try {
          return (await c.status()).peerId === PEER_ID ? 'answered' : 'wrong'
        } catch (err) {
          return `${i}: ${(err as Error).message}`
        } finally {
          await c.close()
        }
      }))
      expect(outcomes.filter((o) => o !== 'answered')).toEqual([])
    } finally {
      daemon.statusDelayMs = 0
      await capped.stop()
    }
  })

  it('refuses a new connection with an error, logged, only when every connection is handling a request', async () => {
    const warnings: string[] = []
    const logger = pino({ level: 'warn' }, { write: (line: string) => { warnings.push(String(JSON.parse(line).msg)) } })
    const path = join(dir, 'busy.sock')
    const capped = createControlServer({ socketPath: path, handlers: daemon, maxConnections: 2, logger })
    await capped.start()
    daemon.statusDelayMs = 1000
    try {
      const busy = [await openRaw(path), await openRaw(path)]
      for (const r of busy) r.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'status' }) + '\n')
      await new Promise((resolve) => setTimeout(resolve, 100))
      const third = await openRaw(path)
      // its request is on the way when the refusal comes: it still reads the refusal
      third.send(request('status'))
      const answer = await third.next()
      expect(answer.error.code).toBe(RPC_ERROR.SERVER_BUSY)
      await third.closed
      expect(warnings).toContain('control connections at the cap: new ones refused (busy) or idle ones closed to make room')
      for (const r of busy) expect((await r.next()).result.peerId).toBe(PEER_ID)
    } finally {
      daemon.statusDelayMs = 0
      await capped.stop()
    }
  })
})
