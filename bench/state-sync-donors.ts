/**
 * A joiner's state transfer from one donor against one range from each of several donors
 * (issue 20: no member the choke point). Every donor and the joiner is a separate process with a
 * node made the way the daemon makes them (createPeerNode: TCP + Noise + yamux); the donors serve
 * the same state (parameters and optimizer state of `floats` float32 each, momentum-SGD-shaped).
 * Rounds interleave: whole from donor 0 (fetchSnapshot), then in ranges from all donors
 * (fetchStateFromDonors, which also hashes the reassembled state to check it against the digest
 * the donors announce; each donor hashes its copy once, on its first range request).
 *
 * On 127.0.0.1 the processes share the machine's cores, so wall time there mostly shows what the
 * ranges cost in CPU (the hash, more streams). `--uplink-mbit N` puts each process in a network
 * namespace of its own (test/netns/support, needs root) and shapes every donor's uplink to N
 * Mbit/s with a token bucket (tc tbf), as members on separate hosts: a transfer from one donor is
 * then bound by that donor's uplink, and ranges by the joiner's downlink or CPU.
 *
 *   npx tsx bench/state-sync-donors.ts [--floats N] [--donors D] [--rounds R] [--uplink-mbit M]
 */
import '../polyfill.js'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { execFileSync, fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { createPeerNode, type PeerNode } from '../protocols/node/index.js'
import { floatRange, stateDigest, type TrainingSnapshot } from '../protocols/snapshot/index.js'
import { fetchSnapshot, fetchStateFromDonors, registerStateSyncServer } from '../protocols/state-sync/index.js'
import { createNetnsTopology, type NetnsTopology } from '../test/netns/support/netns-topology.js'

function pattern (n: number, seed: number): Float32Array {
  const bits = new Uint32Array(n)
  let x = (0x9e3779b9 ^ seed) >>> 0
  for (let i = 0; i < n; i++) { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; bits[i] = x & 0x3fffffff }
  return new Float32Array(bits.buffer)
}

function makeState (floats: number): TrainingSnapshot {
  return { jobConfig: { id: 'bench' }, step: 40, epoch: 1, cursor: 0, meta: {}, params: pattern(floats, 1), optimizerState: pattern(floats, 2) }
}

async function startNode (address: string): Promise<PeerNode> {
  const node = await createPeerNode({ privateKey: await generateKeyPair('Ed25519'), listen: [`/ip4/${address}/tcp/0`] })
  await node.start()
  return node
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

/** donor process: serve the state, report the address, stay until the parent disconnects */
async function donor (floats: number, address: string): Promise<void> {
  const node = await startNode(address)
  const state = makeState(floats)
  await registerStateSyncServer(node.libp2p, { getSnapshot: async () => state, maxConcurrent: 4 })
  process.send?.({ addr: node.libp2p.getMultiaddrs()[0].toString(), id: node.libp2p.peerId.toString() })
  process.on('disconnect', () => { void node.stop().finally(() => process.exit(0)) })
}

/** joiner process: fetch whole and in ranges, interleaved; report the times (ms) */
async function joiner (floats: number, rounds: number, address: string, donors: Array<{ addr: string, id: string }>): Promise<void> {
  const node = await startNode(address)
  for (const d of donors) await node.libp2p.dial(multiaddr(d.addr))
  const expected = makeState(floats)
  const digest = stateDigest(expected.params, expected.optimizerState)
  const times = { whole: [] as number[], ranges: [] as number[] }
  for (let round = 0; round < rounds; round++) {
    let t = performance.now()
    const whole = await fetchSnapshot(node.libp2p, multiaddr(donors[0].addr), { jobId: 'bench' })
    times.whole.push(performance.now() - t)
    if (stateDigest(whole.params, whole.optimizerState) !== digest) throw new Error('the whole state differs')
    t = performance.now()
    const fetched = await fetchStateFromDonors(node.libp2p, donors.map((d) => d.id), { jobId: 'bench' }, { vouchers: 2 })
    times.ranges.push(performance.now() - t)
    if (!fetched.verified || fetched.from.length !== donors.length) throw new Error(`ranges not used: from ${fetched.from.length}, verified ${String(fetched.verified)}`)
  }
  process.send?.(times)
  await node.stop()
  process.disconnect()
}

async function main (): Promise<void> {
  const { values } = parseArgs({ options: { floats: { type: 'string', default: '11172042' }, donors: { type: 'string', default: '4' }, rounds: { type: 'string', default: '5' }, 'uplink-mbit': { type: 'string' } } })
  const floats = Number(values.floats) // default: resnet18's parameter count
  const donorCount = Number(values.donors)
  const rounds = Number(values.rounds)
  const uplink = values['uplink-mbit'] === undefined ? undefined : Number(values['uplink-mbit'])
  const script = fileURLToPath(import.meta.url)
  let topology: NetnsTopology | undefined
  const children: ChildProcess[] = []
  /** a role in its own process: in host i's namespace when shaping links */
  const spawnRole = (host: number, args: string[]): ChildProcess => {
    const inNamespace = topology === undefined ? [] : ['netns', 'exec', topology.hosts[host].namespace, process.execPath]
    const child = fork(script, args, topology === undefined
      ? { execArgv: ['--import', 'tsx'] }
      : { execPath: 'ip', execArgv: [...inNamespace, '--import', 'tsx'] })
    children.push(child)
    return child
  }
  const addressOf = (host: number): string => topology?.hosts[host].address ?? '127.0.0.1'
  try {
    if (uplink !== undefined) {
      topology = await createNetnsTopology({ hosts: donorCount + 1, subnet: '10.78.0' })
      for (const h of topology.hosts.slice(1)) {
        execFileSync('ip', ['netns', 'exec', h.namespace, 'tc', 'qdisc', 'add', 'dev', h.nsVeth, 'root', 'tbf', 'rate', `${uplink}mbit`, 'burst', '256kb', 'latency', '200ms'])
      }
    }
    const donors: Array<{ addr: string, id: string }> = []
    for (let i = 0; i < donorCount; i++) {
      const child = spawnRole(i + 1, ['--role', 'donor', String(floats), addressOf(i + 1)])
      donors.push(await new Promise((resolve) => child.once('message', resolve)))
    }
    const j = spawnRole(0, ['--role', 'joiner', String(floats), addressOf(0), String(rounds), JSON.stringify(donors)])
    const times = await new Promise<{ whole: number[], ranges: number[] }>((resolve, reject) => {
      j.once('message', resolve)
      j.once('exit', (code) => reject(new Error(`joiner exited with ${code}`)))
    })
    const mb = 8 * floats / 1e6
    const busiest = 4 * Math.max(...donors.map((_, i) => { const r = floatRange(2 * floats, i, donorCount); return r.end - r.start })) / 1e6
    console.log(`state of ${floats} parameters + ${floats} optimizer values (${mb.toFixed(0)} MB), ${donorCount} donor processes, ${rounds} rounds interleaved, ${uplink === undefined ? '127.0.0.1' : `each donor's uplink shaped to ${uplink} Mbit/s (netns + tc tbf)`}`)
    console.log('| fetch | median s | range s | MB/s | MB the busiest donor sends |')
    console.log('|---|---|---|---|---|')
    for (const [label, xs, sent] of [['whole from one donor', times.whole, mb], [`one range from each of ${donorCount} (checked)`, times.ranges, busiest]] as const) {
      console.log(`| ${label} | ${(median(xs) / 1000).toFixed(2)} | ${(Math.min(...xs) / 1000).toFixed(2)}-${(Math.max(...xs) / 1000).toFixed(2)} | ${(mb / (median(xs) / 1000)).toFixed(0)} | ${sent.toFixed(0)} |`)
    }
  } finally {
    for (const c of children) if (c.connected) c.disconnect()
    await new Promise((resolve) => setTimeout(resolve, 500))
    for (const c of children) c.kill()
    await topology?.destroy()
  }
}

const roleAt = process.argv.indexOf('--role')
if (roleAt < 0) await main()
else {
  const [role, floats, address, rounds, donors] = process.argv.slice(roleAt + 1)
  if (role === 'donor') await donor(Number(floats), address)
  else await joiner(Number(floats), Number(rounds), address, JSON.parse(donors) as Array<{ addr: string, id: string }>)
}
