/**
 * Real loopback runs beside `bench/scale-sim.ts`:
 * `npx tsx bench/scale-loopback.ts [--quick] [--peers 4,8,16] [--global-batch 128]`.
 *
 * P in-process peers (as `p2pmld demo --peers P` runs them, real libp2p over TCP on 127.0.0.1)
 * train the same mlp job (2 epochs of the 8,000 bundled MNIST digits, batch 32 per peer, or with
 * --global-batch B, B / P per peer: the same global samples per step at every P; qsgd
 * 8-bit, trimmed mean f = 1) in each exchange: stream, gossipsub and reduce-scatter, interleaved
 * per P (1 round; --quick: 4 and 8 peers, stream and reduce-scatter). Per run: steps, test
 * accuracy, wall time, median step and receive wait of peer-0, and every TCP byte each peer
 * wrote per step, as payloads (one qsgd-encoded gradient) and against the stream exchange of
 * the same P. All peers share this machine's cores, so wall time at 16 peers mostly measures
 * compute queueing; bytes do not depend on it.
 */
import '../polyfill.js'
import { parseJobConfig } from '../config/job-config.js'
import { runDemo } from '../daemon/demo/run-demo.js'
import { silentLogger } from '../daemon/logger.js'
import { createCodec } from '../ml/compress/index.js'
import { createModel } from '../ml/models/zoo.js'

const quick = process.argv.includes('--quick')
const peersArg = process.argv.indexOf('--peers')
const PEERS = peersArg >= 0 ? process.argv[peersArg + 1].split(',').map(Number) : quick ? [4, 8] : [4, 8, 16]
const globalArg = process.argv.indexOf('--global-batch')
const GLOBAL_BATCH = globalArg >= 0 ? Number(process.argv[globalArg + 1]) : undefined
if (GLOBAL_BATCH !== undefined && PEERS.some((p) => !Number.isInteger(GLOBAL_BATCH / p) || GLOBAL_BATCH / p < 1)) {
  throw new Error(`--global-batch ${process.argv[globalArg + 1]} must be a whole multiple of every --peers count (${PEERS.join(', ')})`)
}
const EXCHANGES = quick ? ['stream', 'reduce-scatter'] as const : ['stream', 'gossipsub', 'reduce-scatter'] as const
if (PEERS.some((p) => !Number.isInteger(p) || p < 3)) throw new Error(`--peers takes a comma-separated list of whole numbers >= 3, got ${process.argv[peersArg + 1]}`)
const payload = createCodec({ codec: 'qsgd', bits: 8, bucketSize: 512 }).encodedSize(createModel('mlp').layout.totalSize)
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1] ?? NaN

console.log(`mlp, 2 epochs, ${GLOBAL_BATCH === undefined ? 'batch 32 per peer' : `global batch ${GLOBAL_BATCH} (${GLOBAL_BATCH}/P per peer)`}, qsgd 8-bit (one payload = ${(payload / 1024).toFixed(0)} KiB), trimmed mean f = 1`)
console.log(['P'.padStart(3), 'exchange'.padEnd(15), 'steps'.padStart(6), 'test acc'.padStart(9), 'wall s'.padStart(7), 'step ms'.padStart(8),
  'wait ms'.padStart(8), 'KiB/step'.padStart(9), 'payloads'.padStart(9), 'vs stream'.padStart(10), 'identical'.padStart(10)].join(' '))
for (const peers of PEERS) {
  let streamBytes: number | undefined
  for (const exchange of EXCHANGES) {
    const job = parseJobConfig({
      id: `scale-${exchange}-${peers}-${process.pid}`, model: 'mlp', epochs: 2, batchSize: GLOBAL_BATCH === undefined ? 32 : GLOBAL_BATCH / peers, minPeers: peers,
      optimizer: { type: 'sgd', lr: 0.05, momentum: 0.9 }, compression: { codec: 'qsgd', bits: 8 },
      aggregation: { rule: 'trimmed-mean', f: 1 }, exchange, earlyStopping: { patience: 0 }
    })
    const stepMs: number[] = []
    const waitMs: number[] = []
    const result = await runDemo({ peers, job, log: silentLogger(), events: { onStep: (r) => { stepMs.push(r.stepMs); waitMs.push(r.waitedMs) } } })
    const steps = Math.max(1, stepMs.length)
    const bytes = result.bytesSentPerPeer.reduce((a, b) => a + b, 0) / result.bytesSentPerPeer.length / steps
    if (exchange === 'stream') streamBytes = bytes
    console.log([String(peers).padStart(3), exchange.padEnd(15), String(stepMs.length).padStart(6),
      `${((result.peers[0].result?.test.accuracy ?? NaN) * 100).toFixed(1)} %`.padStart(9), (result.wallMs / 1000).toFixed(1).padStart(7),
      median(stepMs).toFixed(0).padStart(8), median(waitMs).toFixed(0).padStart(8), (bytes / 1024).toFixed(0).padStart(9),
      (bytes / payload).toFixed(2).padStart(9), streamBytes === undefined ? '-'.padStart(10) : `x${(bytes / streamBytes).toFixed(2)}`.padStart(10),
      String(result.identicalParameters).padStart(10)].join(' '))
  }
}
