/**
 * State-sync throughput for a VGG-11-sized parameter vector (~133 M float32, ~531 MB) between two
 * libp2p nodes on loopback (TCP + Noise + yamux), against baselines measured in the same run:
 * raw node:net TCP on loopback, and the same bytes over a bare libp2p stream (no codec, no hash).
 * A fourth row repeats the state sync with yamux streams opened at their 16 MiB maximum window.
 *
 *   npx tsx bench/state-sync-throughput.ts [floatCount] [rounds]
 */
import '../polyfill.js'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import type { Libp2p } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { createServer, connect, type AddressInfo } from 'node:net'
import { fetchSnapshot, registerStateSyncServer } from '../protocols/state-sync/index.js'
import type { TrainingSnapshot } from '../protocols/snapshot/index.js'

const FLOATS = Number(process.argv[2] ?? 132_863_336)
const ROUNDS = Number(process.argv[3] ?? 3)
const CHUNK = 1024 * 1024
const BARE_PROTOCOL = '/p2pmld/bench-bare/1.0.0'

/** `wideWindow`: yamux streams start at the 16 MiB window instead of growing from 256 KiB */
async function createNode (wideWindow = false): Promise<Libp2p> {
  const window = 16 * 1024 * 1024
  return createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [wideWindow ? yamux({ streamOptions: { initialStreamWindowSize: window, maxStreamWindowSize: window } }) : yamux()]
  })
}

function makeParams (n: number): Float32Array {
  const bits = new Uint32Array(n)
  let x = 0x9e3779b9
  for (let i = 0; i < n; i++) { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; bits[i] = x }
  return new Float32Array(bits.buffer)
}

/** raw TCP: send the bytes in 1 MiB writes honouring 'drain', receive into a preallocated buffer */
async function rawTcp (bytes: Uint8Array): Promise<number> {
  const target = new Uint8Array(bytes.byteLength)
  let received = 0
  const { promise: done, resolve } = Promise.withResolvers<void>()
  const server = createServer((socket) => {
    socket.on('data', (data: Buffer) => {
      target.set(data, received)
      received += data.byteLength
      if (received === target.byteLength) resolve()
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const started = performance.now()
  const socket = connect((server.address() as AddressInfo).port, '127.0.0.1')
  await new Promise<void>((r) => socket.once('connect', r))
  for (let offset = 0; offset < bytes.byteLength; offset += CHUNK) {
    if (!socket.write(bytes.subarray(offset, offset + CHUNK))) await new Promise((r) => socket.once('drain', r))
  }
  await done
  const seconds = (performance.now() - started) / 1000
  if (!Buffer.from(target.buffer).equals(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))) throw new Error('raw TCP corrupted data')
  socket.destroy()
  await new Promise((r) => server.close(r))
  return seconds
}

/** the same bytes over a bare libp2p stream, using the stream's own iterator */
async function bareLibp2p (serverNode: Libp2p, clientNode: Libp2p, bytes: Uint8Array): Promise<number> {
  await serverNode.handle(BARE_PROTOCOL, async (stream) => {
    for (let offset = 0; offset < bytes.byteLength; offset += CHUNK) {
      if (!stream.send(bytes.subarray(offset, offset + CHUNK))) {
        await new Promise((r) => stream.addEventListener('drain', r, { once: true }))
      }
    }
    await stream.close()
  })
  const target = new Uint8Array(bytes.byteLength)
  const started = performance.now()
  // without a signal libp2p negotiates under its own 10 s AbortSignal.timeout, which surfaced
  // later as an unhandled TimeoutError when the transfer outlived it
  const stream = await clientNode.dialProtocol(serverNode.getMultiaddrs()[0], BARE_PROTOCOL, { signal: new AbortController().signal })
  await stream.close()
  let received = 0
  for await (const chunk of stream) {
    for (const part of chunk instanceof Uint8Array ? [chunk] : chunk) { target.set(part, received); received += part.byteLength }
  }
  const seconds = (performance.now() - started) / 1000
  await serverNode.unhandle(BARE_PROTOCOL)
  if (received !== bytes.byteLength) throw new Error(`bare libp2p stream delivered ${received} of ${bytes.byteLength} bytes`)
  return seconds
}

async function stateSync (clientNode: Libp2p, serverNode: Libp2p, snapshot: TrainingSnapshot): Promise<number> {
  const started = performance.now()
  const received = await fetchSnapshot(clientNode, serverNode.getMultiaddrs()[0], { jobId: 'vgg' })
  const seconds = (performance.now() - started) / 1000
  if (received.params.length !== snapshot.params.length || !Buffer.from(received.params.buffer).equals(Buffer.from(snapshot.params.buffer))) {
    throw new Error('state sync delivered different parameters')
  }
  return seconds
}

function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

const params = makeParams(FLOATS)
const bytes = new Uint8Array(params.buffer)
const mb = bytes.byteLength / 1e6
const snapshot: TrainingSnapshot = { jobConfig: { id: 'vgg' }, step: 1, epoch: 0, cursor: 0, meta: { lr: 0.01 }, params, optimizerState: new Float32Array(0) }
const serverNode = await createNode()
const clientNode = await createNode()
const wideServer = await createNode(true)
const wideClient = await createNode(true)
const sync = await registerStateSyncServer(serverNode, { getSnapshot: async () => snapshot })
const wideSync = await registerStateSyncServer(wideServer, { getSnapshot: async () => snapshot })
const times = { raw: [] as number[], bare: [] as number[], sync: [] as number[], wide: [] as number[] }
try {
  for (let round = 0; round < ROUNDS; round++) {
    times.raw.push(await rawTcp(bytes))
    times.bare.push(await bareLibp2p(serverNode, clientNode, bytes))
    times.sync.push(await stateSync(clientNode, serverNode, snapshot))
    times.wide.push(await stateSync(wideClient, wideServer, snapshot))
    console.log(`round ${round + 1}: raw ${(mb / times.raw[round]).toFixed(0)} MB/s, bare libp2p ${(mb / times.bare[round]).toFixed(0)} MB/s, state sync ${(mb / times.sync[round]).toFixed(0)} MB/s, state sync (16 MiB yamux window) ${(mb / times.wide[round]).toFixed(0)} MB/s`)
  }
} finally {
  await sync.stop()
  await wideSync.stop()
  for (const node of [clientNode, serverNode, wideClient, wideServer]) await node.stop()
}
const raw = mb / median(times.raw)
const bare = mb / median(times.bare)
const synced = mb / median(times.sync)
console.log(`\n${FLOATS} float32 (${mb.toFixed(0)} MB), median of ${ROUNDS} rounds:`)
console.log(`  raw TCP (node:net)           ${raw.toFixed(0)} MB/s`)
console.log(`  bare libp2p stream           ${bare.toFixed(0)} MB/s  (${(100 * bare / raw).toFixed(0)} % of raw)`)
console.log(`  state sync (codec + sha256)  ${synced.toFixed(0)} MB/s  (${(100 * synced / raw).toFixed(0)} % of raw, ${(100 * synced / bare).toFixed(0)} % of bare libp2p)`)
const wide = mb / median(times.wide)
console.log(`  state sync, 16 MiB yamux window ${wide.toFixed(0)} MB/s  (${(100 * wide / raw).toFixed(0)} % of raw)`)
console.log(`  goal >= 50 % of raw: ${synced / raw >= 0.5 ? 'met' : 'NOT met'} (default yamux), ${wide / raw >= 0.5 ? 'met' : 'NOT met'} (16 MiB window)`)
