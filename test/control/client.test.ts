import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, expect, it } from 'vitest'
import {
  ControlConnectionError,
  ControlProtocolError,
  ControlTimeoutError,
  createControlClient,
  createControlServer,
  DaemonNotRunningError,
  type ControlServer
} from '../../daemon/control/index.js'
import { createMemoryDaemon, PEER_ID, type MemoryDaemon } from './memory-handlers.js'

let dir: string
let socketPath: string
let daemon: MemoryDaemon
let server: ControlServer

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'p2pmld-client-'))
  socketPath = join(dir, 'p2pmld.sock')
  daemon = createMemoryDaemon()
  server = createControlServer({ socketPath, handlers: daemon })
  await server.start()
})

afterEach(async () => {
  await server.stop()
  rmSync(dir, { recursive: true, force: true })
})

it('times out a slow answer, ignores it when it arrives late, and keeps working', async () => {
  const client = createControlClient(socketPath, { timeoutMs: 100 })
  daemon.statusDelayMs = 300
  const err = await client.status().then(() => undefined, (e: unknown) => e)
  expect(err).toBeInstanceOf(ControlTimeoutError)
  expect((err as Error).message).toBe(`the daemon at ${socketPath} did not answer status within 100 ms`)
  daemon.statusDelayMs = 0
  await new Promise((resolve) => setTimeout(resolve, 300))
  expect((await client.peers()).peers).toHaveLength(2)
  await client.close()
})

it('reports a connection the daemon drops mid-request', async () => {
  const client = createControlClient(socketPath)
  daemon.statusDelayMs = 1000
  const pending = client.status().then(() => undefined, (e: unknown) => e)
  await new Promise((resolve) => setTimeout(resolve, 50))
  await server.stop()
  const err = await pending
  expect(err).toBeInstanceOf(ControlConnectionError)
  expect((err as Error).message).toMatch(/^lost the connection to the daemon at .* during status: the daemon closed the connection$/)
  // afterwards the socket is gone: a new call says so
  await expect(client.status()).rejects.toBeInstanceOf(DaemonNotRunningError)
  await client.close()
})

it('reconnects after the daemon restarts', async () => {
  const client = createControlClient(socketPath)
  expect((await client.status()).peerId).toBe(PEER_ID)
  await server.stop()
  await server.start()
  expect((await client.status()).peerId).toBe(PEER_ID)
  await client.close()
})

it('rejects a result that does not match the shared schema', async () => {
  daemon.peers = () => ({ peers: [{ id: 'x', addresses: 'not-a-list' }] } as never)
  const client = createControlClient(socketPath)
  const err = await client.peers().then(() => undefined, (e: unknown) => e)
  expect(err).toBeInstanceOf(ControlProtocolError)
  expect((err as Error).message).toContain('peers.0.addresses')
  await client.close()
})

it('runs many calls in parallel on one connection and matches answers to calls', async () => {
  const client = createControlClient(socketPath)
  await client.submitJob({ id: 'j' })
  const results = await Promise.all(Array.from({ length: 200 }, async (_, i) => i % 2 === 0 ? (await client.status()).jobId : (await client.metrics()).jobId))
  expect(results.every((id) => id === 'j')).toBe(true)
  const steps = await Promise.all(Array.from({ length: 20 }, async () => (await client.status()).step))
  expect(new Set(steps).size).toBe(20)
  await client.close()
})
