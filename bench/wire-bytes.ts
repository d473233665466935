/**
 * Bytes on the wire per training step: `npx tsx bench/wire-bytes.ts [--quick]`.
 *
 * Four peers on loopback, meshed by membership heartbeats, each publishing one lenet5-sized
 * gradient (61,706 params) per step to the other three, in both exchange modes and for each
 * codec. What is counted: every byte each peer's TCP sockets wrote (socket.bytesWritten, via
 * the node's TrafficMeter) while the steps ran, i.e. payload plus message header, framing,
 * yamux, Noise, multistream negotiation of new streams, and gossipsub's own control traffic
 * (heartbeats, IHAVE/IDONTWANT) and forwarding. The baseline is the ideal (P-1) x payload
 * bytes per peer per step; amplification = measured / ideal. Latency is from the moment all
 * four peers start publishing to the moment every peer holds the other three's gradients.
 */
import '../polyfill.js'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { createCodec } from '../ml/compress/index.js'
import { createRng } from '../ml/core/rng.js'
import { createGradientExchange, gradientTopic, type ExchangeMode } from '../protocols/gradient-exchange/index.js'
import { createMembershipTopic } from '../protocols/membership-topic.js'
import { parameterDigest, type GradientMessage } from '../protocols/messages/index.js'
import { createPeerNode, createTrafficMeter, type PeerNode, type TrafficMeter } from '../protocols/node/index.js'

const quick = process.argv.includes('--quick')
const PEERS = 4
const PARAMS = 61_706
const STEPS = quick ? 5 : 20
const WARMUP = 2
const JOB = 'wire-bench'

const codecs = [
  { name: 'none (fp32)', config: { codec: 'none' as const, bits: 8 as const, bucketSize: 512 } },
  { name: 'fp16', config: { codec: 'fp16' as const, bits: 8 as const, bucketSize: 512 } },
  { name: 'qsgd 8-bit', config: { codec: 'qsgd' as const, bits: 8 as const, bucketSize: 512 } },
  { name: 'qsgd 4-bit', config: { codec: 'qsgd' as const, bits: 4 as const, bucketSize: 512 } }
]

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }
async function waitFor (cond: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

const meters: TrafficMeter[] = []
const nodes: PeerNode[] = []
for (let i = 0; i < PEERS; i++) {
  const meter = createTrafficMeter()
  const node = await createPeerNode({
    privateKey: await generateKeyPair('Ed25519'),
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: i === 0 ? [] : nodes[0].dialableAddrs(),
    bootstrapInitialDelayMs: 50,
    metrics: meter.metricsFactory
  })
  await node.start()
  meters.push(meter)
  nodes.push(node)
}
const ids = nodes.map((n) => n.peerId.toString())
const others = (i: number): string[] => ids.filter((_, j) => j !== i)
const members = nodes.map((node, i) => createMembershipTopic({
  node,
  jobId: JOB,
  heartbeat: { intervalMs: 100, build: () => ({ type: 'heartbeat', jobId: JOB, peerId: ids[i], addrs: node.dialableAddrs(), step: 0, digest: '00'.repeat(32), state: 'training' }) }
}))
for (const m of members) await m.start()
await waitFor(() => nodes.every((n) => n.connectedPeers().length === PEERS - 1), 'a full mesh')
// heartbeats would be counted as gradient traffic: stop them once the mesh stands
for (const m of members) await m.stop()

interface Row { codec: string, payload: number, mode: string, perPeerStep: number, amplification: number, latencyMs: number }
const rows: Row[] = []

const workloads = codecs.map(({ name, config }, c) => {
  const codec = createCodec(config)
  const rng = createRng(7 + c)
  // steps are unique per codec: the exchange refuses a second gradient from a sender for one step
  const base = c * (WARMUP + STEPS)
  const messages: GradientMessage[][] = ids.map((sender) => Array.from({ length: WARMUP + STEPS }, (_, k) => {
    const g = new Float32Array(PARAMS)
    for (let j = 0; j < PARAMS; j++) g[j] = rng.nextNormal() * 0.01
    return { jobId: JOB, step: base + k, sender, codec: codec.id, parameterCount: PARAMS, digest: parameterDigest(g.subarray(0, 16)), payload: codec.encode(g, rng) }
  }))
  return { name, messages, payload: messages[0][0].payload.length }
})

type MeshView = { getMeshPeers(topic: string): string[] }
const variants: Array<{ label: string, mode: ExchangeMode, relay?: boolean }> = [
  { label: 'gossip', mode: 'gossip', relay: true },
  { label: 'gossip-norelay', mode: 'gossip', relay: false },
  { label: 'stream', mode: 'stream' }
]
for (const [v, { label, mode, relay }] of variants.entries()) {
  // one exchange per peer for the whole variant, as in a long-running job: re-subscribing would
  // hit gossipsub's prune backoff and measure a mesh that does not forward yet; a topic per
  // variant for the same reason
  const jobId = `${JOB}-${v}`
  const exchanges = nodes.map((node) => mode === 'gossip'
    ? createGradientExchange({ mode, node, jobId, relay, expect: { parameterCount: PARAMS } })
    : createGradientExchange({ mode, node, jobId, expect: { parameterCount: PARAMS } }))
  for (const x of exchanges) await x.start()
  if (mode === 'gossip') {
    await waitFor(() => nodes.every((n) => (n.pubsub as unknown as MeshView).getMeshPeers(gradientTopic(jobId)).length === PEERS - 1), 'a full gossip mesh on the gradient topic')
  }
  const got = new Map<number, number>()
  exchanges.forEach((x) => x.onGradient((msg) => { got.set(msg.step, (got.get(msg.step) ?? 0) + 1) }))
  for (const { name, messages, payload } of workloads) {
    const latencies: number[] = []
    for (let k = 0; k < WARMUP + STEPS; k++) {
      if (k === WARMUP) for (const m of meters) m.reset()
      const step = messages[0][k].step
      const t0 = performance.now()
      await Promise.all(exchanges.map(async (x, i) => await x.publish({ ...messages[i][k], jobId }, others(i))))
      await waitFor(() => got.get(step) === PEERS * (PEERS - 1), `step ${step}`)
      if (k >= WARMUP) latencies.push(performance.now() - t0)
    }
    // let in-flight forwards land before reading the counters
    await sleep(200)
    const sent = meters.reduce((s, m) => s + m.bytesSent(), 0)
    const perPeerStep = sent / (PEERS * STEPS)
    rows.push({ codec: name, payload, mode: label, perPeerStep, amplification: perPeerStep / ((PEERS - 1) * payload), latencyMs: median(latencies) })
  }
  for (const x of exchanges) await x.stop()
}

for (const n of nodes) await n.stop()

const fp32 = rows.find((r) => r.codec.startsWith('none'))?.payload ?? 1
console.log(`wire bytes per peer per step: ${PEERS} peers on loopback, lenet5 (${PARAMS} params), ${STEPS} steps after ${WARMUP} warm-up`)
console.log('ideal = (P-1) x payload; measured = TCP bytes written by each peer (all protocol overhead included)\n')
console.log('codec        payload B   B/param  vs fp32 | mode           sent/peer/step  ideal      amplif.  median step ms')
for (const r of [...rows].sort((a, b) => codecs.findIndex((c) => c.name === a.codec) - codecs.findIndex((c) => c.name === b.codec))) {
  console.log(`${r.codec.padEnd(12)} ${String(r.payload).padStart(9)} ${(r.payload / PARAMS).toFixed(3).padStart(8)} ${(r.payload / fp32).toFixed(3).padStart(8)}x | ${r.mode.padEnd(14)} ${Math.round(r.perPeerStep).toString().padStart(14)} ${String((PEERS - 1) * r.payload).padStart(9)} ${r.amplification.toFixed(2).padStart(8)}x ${r.latencyMs.toFixed(1).padStart(10)}`)
}
const q8 = rows.find((r) => r.codec === 'qsgd 8-bit' && r.mode === 'stream')
if (q8 !== undefined) {
  console.log(`\ngoal: qsgd 8-bit <= 0.3x fp32 bytes: ${(q8.payload / fp32).toFixed(3)}x ${q8.payload / fp32 <= 0.3 ? 'met' : 'MISSED'}`)
}
for (const { label: mode } of variants) {
  const worst = Math.max(...rows.filter((r) => r.mode === mode).map((r) => r.amplification))
  const lat = median(rows.filter((r) => r.mode === mode).map((r) => r.latencyMs))
  console.log(`goal: amplification <= 1.5x, ${mode}: worst ${worst.toFixed(2)}x ${worst <= 1.5 ? 'met' : 'MISSED'}; median of median step latencies ${lat.toFixed(1)} ms`)
}
