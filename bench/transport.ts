/**
 * Transport and mode on the same job: `npx tsx bench/transport.ts [--quick]`.
 *
 * Four in-process peers train the same job (lenet5 on MNIST, qsgd 8-bit, trimmed mean) over
 * libp2p and over the RabbitMQ broker (127.0.0.1:5672), in sync and async mode; the four
 * configurations are interleaved and repeated (3 rounds, 1 with --quick). Per run: median
 * step time of peer-0, bytes each peer wrote to its sockets per step (libp2p: every TCP byte;
 * broker: every byte to the broker, so relaying through it is not counted twice), final test
 * accuracy, and validation accuracy at each epoch's end against samples seen and wall time.
 * The job is plain SGD (lr 0.1), the setting async mode needs; the same in both modes.
 * Ratios are against libp2p sync of the same round.
 */
import '../polyfill.js'
import { parseJobConfig } from '../config/job-config.js'
import { runDemo } from '../daemon/demo/run-demo.js'
import { silentLogger } from '../daemon/logger.js'

const quick = process.argv.includes('--quick')
const ROUNDS = quick ? 1 : 3
const configs = [
  { transport: 'libp2p', mode: 'sync' },
  { transport: 'amqp', mode: 'sync' },
  { transport: 'libp2p', mode: 'async' },
  { transport: 'amqp', mode: 'async' }
] as const
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]

interface Run { stepMs: number, bytesPerStep: number, accuracy: number, wallS: number, curve: string }
const runs = new Map<string, Run[]>()
for (let round = 0; round < ROUNDS; round++) {
  for (const c of configs) {
    const job = parseJobConfig({
      id: `bench-${c.transport}-${c.mode}-${process.pid}-${round}`, transport: c.transport, mode: c.mode,
      model: 'lenet5', epochs: quick ? 1 : 2, batchSize: 32, trainSamples: 4096, maxStaleness: 4, averageEvery: 8,
      // plain SGD on both modes: momentum on stale gradients oscillates (README, async mode)
      optimizer: { type: 'sgd', lr: 0.1, momentum: 0 }, compression: { codec: 'qsgd', bits: 8 }
    })
    const stepMs: number[] = []
    const curve: string[] = []
    const started = performance.now()
    const result = await runDemo({
      peers: 4,
      job,
      log: silentLogger(),
      events: {
        onStep: (r) => stepMs.push(r.stepMs),
        onEpoch: (e) => curve.push(`ep${e.epoch + 1}: ${(e.validationAccuracy * 100).toFixed(1)} % after ${((e.epoch + 1) * 4096 / 1000).toFixed(1)}k samples, ${((performance.now() - started) / 1000).toFixed(1)} s`)
      }
    })
    const steps = result.peers[0].result?.step ?? stepMs.length
    const run: Run = {
      stepMs: median(stepMs),
      bytesPerStep: result.bytesSentPerPeer.reduce((a, b) => a + b, 0) / result.bytesSentPerPeer.length / Math.max(1, steps),
      accuracy: result.peers[0].result?.test.accuracy ?? NaN,
      wallS: result.wallMs / 1000,
      curve: curve.join('; ')
    }
    const key = `${c.transport} ${c.mode}`
    runs.set(key, [...(runs.get(key) ?? []), run])
    console.log(`round ${round + 1} ${key.padEnd(13)} step ${run.stepMs.toFixed(0)} ms  ${(run.bytesPerStep / 1024).toFixed(0)} KiB/step/peer  test acc ${(run.accuracy * 100).toFixed(2)} %  wall ${run.wallS.toFixed(1)} s  identical ${String(result.identicalParameters)}  [${run.curve}]`)
  }
}
const base = runs.get('libp2p sync') ?? []
console.log('\nratios against libp2p sync of the same round (min-max over rounds):')
for (const [key, rs] of runs) {
  const step = rs.map((r, i) => r.stepMs / base[i].stepMs)
  const bytes = rs.map((r, i) => r.bytesPerStep / base[i].bytesPerStep)
  const range = (xs: number[]): string => `${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}`
  console.log(`${key.padEnd(13)} step time x${range(step)}  bytes/step x${range(bytes)}  test acc ${rs.map((r) => (r.accuracy * 100).toFixed(1)).join('/')} %`)
}
