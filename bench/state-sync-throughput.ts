/**
 * State-sync throughput for a VGG-11-sized parameter vector (~133 M float32, ~531 MB) between two
 * nodes made the way the daemon makes them (createPeerNode: TCP + Noise + yamux, identify,
 * gossipsub) on loopback, against a bare Noise-encrypted libp2p stream on the same nodes (the same
 * bytes, no snapshot codec) and raw node:net TCP, measured in the same run. Goal: state sync at
 * >= 90 % of the bare stream (Noise itself caps a stream at a fraction of raw TCP here), taken per
 * round from the two rates, so load that comes and goes hits both alike.
 *
 * Both peers run in this process, like the raw TCP baseline, so every row pays the sender's and the
 * receiver's work on one thread. Wall-clock rows are medians over interleaved rounds; "CPU s/GB" is
 * process.cpuUsage (all threads, user + sys) per GB moved, which a loaded machine disturbs less.
 * "GC pauses" sums the main thread's GC pauses per GB. The breakdown at the end times the per-byte
 * work the transfer thread cannot avoid (Noise's cipher; sha256 for reference: state sync sends no
 * trailer since Noise authenticates the bytes) alone, before the transfers, to show the ceiling.
 *
 *   npx tsx bench/state-sync-throughput.ts [floatCount] [rounds]     (--quick is accepted and changes nothing)
 *   node --initial-old-space-size=128 --import tsx bench/state-sync-throughput.ts
 *
 * V8 counts external memory allocated since the last mark-compact (every Buffer Noise's cipher
 * returns) against the old-generation limit, which sits near 45 MB for a heap this small, so a
 * transfer runs back-to-back mark-compacts; the second command starts that limit at 128 MB,
 * which shows what they cost.
 */
import '../polyfill.js'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Libp2p } from '@libp2p/interface'
import { createHash, createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { createServer, connect, type AddressInfo } from 'node:net'
import { PerformanceObserver } from 'node:perf_hooks'
import { createPeerNode, type PeerNode } from '../protocols/node/index.js'
import type { TrainingSnapshot } from '../protocols/snapshot/index.js'
import { fetchSnapshot, registerStateSyncServer } from '../protocols/state-sync/index.js'

// positional arguments only (`--quick`, which the other benches take, changes nothing here: a round
// is a few seconds); anything else but a whole number > 0 is refused, naming it (a `--quick` read as
// the float count was NaN, and the run waited for ever)
const [floatsArg, roundsArg] = process.argv.slice(2).filter((a) => a !== '--quick')
const wholeArg = (value: string | undefined, what: string, fallback: number): number => {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1) throw new Error(`${what} must be a whole number > 0, got '${value}': npx tsx bench/state-sync-throughput.ts [floatCount] [rounds]`)
  return n
}
const FLOATS = wholeArg(floatsArg, 'floatCount', 132_863_336)
const ROUNDS = wholeArg(roundsArg, 'rounds', 3)
const CHUNK = 1024 * 1024
const BARE_PROTOCOL = '/p2pmld/bench-bare/1.0.0'
/** Noise's largest plaintext per transport message (65535 minus the 16-byte tag) */
const NOISE_PLAINTEXT = 65535 - 16

function makeParams (n: number): Float32Array {
  const bits = new Uint32Array(n)
  let x = 0x9e3779b9
  for (let i = 0; i < n; i++) { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; bits[i] = x }
  return new Float32Array(bits.buffer)
}

function sameBytes (a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))
}

/** raw TCP: send the bytes in 1 MiB writes honouring 'drain', receive into a preallocated buffer */
async function rawTcp (bytes: Uint8Array): Promise<void> {
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
  const socket = connect((server.address() as AddressInfo).port, '127.0.0.1')
  await new Promise<void>((r) => socket.once('connect', r))
  for (let offset = 0; offset < bytes.byteLength; offset += CHUNK) {
    if (!socket.write(bytes.subarray(offset, offset + CHUNK))) await new Promise((r) => socket.once('drain', r))
  }
  await done
  socket.destroy()
  await new Promise((r) => server.close(r))
  if (!sameBytes(target, bytes)) throw new Error('raw TCP corrupted data')
}

/** the same bytes over a bare libp2p stream, read with the stream's own iterator */
async function bareLibp2p (client: Libp2p, server: Libp2p, bytes: Uint8Array): Promise<void> {
  // without a signal libp2p negotiates under its own 10 s AbortSignal.timeout, which surfaced
  // later as an unhandled TimeoutError when the transfer outlived it
  const stream = await client.dialProtocol(server.getMultiaddrs()[0], BARE_PROTOCOL, { signal: new AbortController().signal })
  await stream.close()
  const target = new Uint8Array(bytes.byteLength)
  let received = 0
  for await (const chunk of stream) {
    for (const part of chunk instanceof Uint8Array ? [chunk] : chunk) { target.set(part, received); received += part.byteLength }
  }
  if (received !== bytes.byteLength || !sameBytes(target, bytes)) throw new Error(`bare libp2p stream delivered ${received} of ${bytes.byteLength} bytes, or different bytes`)
}

async function serveBare (server: Libp2p, bytes: Uint8Array): Promise<void> {
  await server.handle(BARE_PROTOCOL, async (stream) => {
    for (let offset = 0; offset < bytes.byteLength; offset += CHUNK) {
      if (!stream.send(bytes.subarray(offset, offset + CHUNK))) {
        await new Promise((r) => stream.addEventListener('drain', r, { once: true }))
      }
    }
    await stream.close()
  })
}

async function stateSync (client: Libp2p, server: Libp2p, snapshot: TrainingSnapshot): Promise<void> {
  const received = await fetchSnapshot(client, server.getMultiaddrs()[0], { jobId: 'vgg' })
  if (!sameBytes(new Uint8Array(received.params.buffer), new Uint8Array(snapshot.params.buffer))) {
    throw new Error('state sync delivered different parameters')
  }
}

/** wall seconds per GB for `work` over `bytes` bytes, best of 5: the least disturbed by other load */
function secondsPerGb (bytes: number, work: () => void): number {
  let best = Infinity
  for (let i = 0; i < 5; i++) {
    const started = performance.now()
    work()
    best = Math.min(best, (performance.now() - started) / 1000)
  }
  return best / (bytes / 1e9)
}

interface Breakdown { encrypt: number, decrypt: number, sha256: number }

/** the per-byte work a state sync adds to a raw transfer, each alone: Noise 17 runs chacha20-poly1305 through node:crypto, one cipher per message */
function measureBreakdown (): Breakdown {
  const key = randomBytes(32)
  const nonce = Buffer.alloc(12)
  const plaintext = randomBytes(NOISE_PLAINTEXT)
  const messages = 1024 // 67 MB
  const seal = (): Buffer => {
    const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 })
    cipher.setAAD(Buffer.alloc(0), { plaintextLength: plaintext.byteLength })
    return Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()])
  }
  const sealed = seal()
  const open = (): void => {
    const decipher = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 })
    decipher.setAAD(Buffer.alloc(0), { plaintextLength: NOISE_PLAINTEXT })
    decipher.setAuthTag(sealed.subarray(NOISE_PLAINTEXT))
    decipher.update(sealed.subarray(0, NOISE_PLAINTEXT))
    decipher.final()
  }
  const block = randomBytes(CHUNK)
  return {
    encrypt: secondsPerGb(messages * NOISE_PLAINTEXT, () => { for (let i = 0; i < messages; i++) seal() }),
    decrypt: secondsPerGb(messages * NOISE_PLAINTEXT, () => { for (let i = 0; i < messages; i++) open() }),
    sha256: secondsPerGb(64 * CHUNK, () => { const hash = createHash('sha256'); for (let i = 0; i < 64; i++) hash.update(block); hash.digest() })
  }
}

function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

async function startNode (): Promise<PeerNode> {
  const node = await createPeerNode({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] })
  await node.start()
  return node
}

const params = makeParams(FLOATS)
const bytes = new Uint8Array(params.buffer)
const gb = bytes.byteLength / 1e9
const snapshot: TrainingSnapshot = { jobConfig: { id: 'vgg' }, step: 1, epoch: 0, cursor: 0, meta: { lr: 0.01 }, params, optimizerState: new Float32Array(0) }
// before any transfer, so the GC work big transfers leave behind does not land in these
const cost = measureBreakdown()
const serverNode = await startNode()
const clientNode = await startNode()
const sync = await registerStateSyncServer(serverNode.libp2p, { getSnapshot: async () => snapshot })
await serveBare(serverNode.libp2p, bytes)

const rows = {
  raw: { label: 'raw TCP (node:net)', run: async () => { await rawTcp(bytes) } },
  bare: { label: 'bare libp2p stream', run: async () => { await bareLibp2p(clientNode.libp2p, serverNode.libp2p, bytes) } },
  sync: { label: 'state sync (daemon node)', run: async () => { await stateSync(clientNode.libp2p, serverNode.libp2p, snapshot) } }
}
type Row = keyof typeof rows
const rates: Record<Row, number[]> = { raw: [], bare: [], sync: [] }
const cpu: Record<Row, number[]> = { raw: [], bare: [], sync: [] }
const gcPause: Record<Row, number[]> = { raw: [], bare: [], sync: [] }
let gcMs = 0
const gcObserver = new PerformanceObserver((list) => { for (const entry of list.getEntries()) gcMs += entry.duration })
gcObserver.observe({ entryTypes: ['gc'] })
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of Object.keys(rows) as Row[]) {
      const cpuBefore = process.cpuUsage()
      const gcBefore = gcMs
      const started = performance.now()
      await rows[name].run()
      const seconds = (performance.now() - started) / 1000
      const used = process.cpuUsage(cpuBefore)
      // gc entries arrive on a later tick
      await new Promise((resolve) => setImmediate(resolve))
      rates[name].push(bytes.byteLength / 1e6 / seconds)
      cpu[name].push((used.user + used.system) / 1e6 / gb)
      gcPause[name].push((gcMs - gcBefore) / 1000 / gb)
    }
    console.log(`round ${round + 1}: ${(Object.keys(rows) as Row[]).map((n) => `${n} ${rates[n][round].toFixed(0)} MB/s`).join(', ')}`)
  }
} finally {
  gcObserver.disconnect()
  await sync.stop()
  await clientNode.stop()
  await serverNode.stop()
}

const raw = median(rates.raw)
console.log(`\n${FLOATS} float32 (${(gb * 1000).toFixed(0)} MB), both peers in this process, median of ${ROUNDS} interleaved rounds:`)
for (const name of Object.keys(rows) as Row[]) {
  const rate = median(rates[name])
  const spread = `${Math.min(...rates[name]).toFixed(0)}-${Math.max(...rates[name]).toFixed(0)}`
  console.log(`  ${rows[name].label.padEnd(26)} ${rate.toFixed(0).padStart(5)} MB/s (${spread.padStart(9)})  ${(100 * rate / raw).toFixed(0).padStart(3)} % of raw   CPU ${median(cpu[name]).toFixed(2)} s/GB, GC pauses ${median(gcPause[name]).toFixed(2)} s/GB`)
}
const synced = median(rates.sync)
const ofBare = rates.sync.map((rate, round) => rate / rates.bare[round])
const ofBareMedian = median(ofBare)
console.log(`  state sync / bare stream per round: ${(100 * ofBareMedian).toFixed(0)} % (${(100 * Math.min(...ofBare)).toFixed(0)}-${(100 * Math.max(...ofBare)).toFixed(0)} %); goal >= 90 %: ${ofBareMedian >= 0.9 ? 'met' : 'NOT met'}`)

const rawSeconds = 1 / (raw / 1000)
const bareFloor = rawSeconds + cost.encrypt + cost.decrypt
const syncFloor = bareFloor
const percentOfRaw = (seconds: number): string => `${(100 * rawSeconds / seconds).toFixed(0)} % of raw`
console.log('\nwhere the time goes (s/GB on the one thread both peers share; cipher and sha256 timed alone, best of 5):')
console.log(`  raw TCP ${rawSeconds.toFixed(2)}; added by the Noise cipher: encrypt ${cost.encrypt.toFixed(2)} + decrypt ${cost.decrypt.toFixed(2)}; sha256 (not on this path) would add ${cost.sha256.toFixed(2)} per side`)
const bareSeconds = 1000 / median(rates.bare)
const syncSeconds = 1000 / synced
console.log(`  bare stream: floor raw + cipher ${bareFloor.toFixed(2)} (${percentOfRaw(bareFloor)}), measured ${bareSeconds.toFixed(2)}: yamux/Noise framing, copies, events, GC, waits ${(bareSeconds - bareFloor).toFixed(2)}`)
console.log(`  state sync:  floor raw + cipher ${syncFloor.toFixed(2)} (${percentOfRaw(syncFloor)}), measured ${syncSeconds.toFixed(2)}: beyond the floor ${(syncSeconds - syncFloor).toFixed(2)}`)
