/**
 * Codec and aggregator speed: `npx tsx bench/codec-throughput.ts [--quick]`.
 * Codec throughput is in MB/s of float32 input (4 bytes per value), with a plain typed-array
 * copy as the in-run baseline, each codec in a child process of its own (`--codec LABEL` runs
 * one); aggregator times are medians, with the plain mean as baseline.
 * Both directions write into reused buffers, as the daemon does (the sync trainer encodes each
 * step's payload into a ring of 4 buffers, the receive path decodes into one): a fresh array per
 * call would time the allocation (in a new process the first ~1000 78 KB allocations cost
 * ~125 us each). Goals (qsgd 8 bits): encode >= 1 GB/s, decode >= 2 GB/s. Last, the trimmed mean
 * (f = 1), median and mean as the rules run them (ml/aggregate/ranked-columns.ts's WebAssembly
 * kernel) against their JS paths (the same bits), alternated, into a reused output.
 */
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { AggregationConfigSchema, CompressionConfigSchema, type AggregationRule } from '../config/job-config.js'
import { meanInJs, medianInJs, trimmedMeanInJs } from '../ml/aggregate/coordinate-wise.js'
import { aggregateMean, aggregateMedian, aggregateTrimmedMean, createAggregator } from '../ml/aggregate/index.js'
import { aggregateMeanAroundMedian, meanAroundMedianInJs } from '../ml/aggregate/mean-around-median.js'
import { createCodec } from '../ml/compress/index.js'
import { createRng } from '../ml/core/rng.js'

const quick = process.argv.includes('--quick')
const sizes = [{ name: 'lenet5', d: 61_706 }, { name: 'mlp-large', d: 1_863_690 }]

function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[s.length >> 1]
}

/** median ms per call over enough repetitions to fill ~budgetMs */
function time (fn: () => void, budgetMs: number): number {
  // warm up for a while, not a few calls: V8 optimizes over the first calls, and a daemon
  // encodes once a step for thousands of steps
  const warmUntil = performance.now() + (quick ? 300 : 600)
  for (let i = 0; i < 20 || performance.now() < warmUntil; i++) fn()
  const samples: number[] = []
  const deadline = performance.now() + budgetMs
  while (samples.length < 5 || (performance.now() < deadline && samples.length < 200)) {
    const t0 = performance.now()
    fn()
    samples.push(performance.now() - t0)
  }
  return median(samples)
}

function gaussian (d: number, seed: number): Float32Array {
  const rng = createRng(seed)
  const v = new Float32Array(d)
  for (let i = 0; i < d; i++) v[i] = rng.nextNormal() * 0.01
  return v
}

const budget = quick ? 150 : 1000
const mbps = (d: number, ms: number): string => ((4 * d) / 1e6 / (ms / 1000)).toFixed(0).padStart(6)

const CODECS = [
  { label: 'qsgd-8', config: { codec: 'qsgd', bits: 8 } },
  { label: 'qsgd-4', config: { codec: 'qsgd', bits: 4 } },
  { label: 'qsgd-2', config: { codec: 'qsgd', bits: 2 } },
  { label: 'fp16', config: { codec: 'fp16' } },
  { label: 'none', config: { codec: 'none' } }
] as const

/** one codec's rows (every size), as `--codec LABEL` prints them */
function codecRows (label: string): void {
  const entry = CODECS.find((c) => c.label === label)
  if (entry === undefined) throw new Error(`--codec ${label}: expected one of ${CODECS.map((c) => c.label).join(', ')}`)
  const { config } = entry
  for (const { name, d } of sizes) {
    const v = gaussian(d, 1)
    const sink = new Float32Array(d)
    const copyMs = time(() => sink.set(v), budget)
    const codec = createCodec(CompressionConfigSchema.parse(config))
    const rng = createRng(2)
    const bytes = codec.encode(v, rng)
    const ring = [new Uint8Array(bytes.length), new Uint8Array(bytes.length), new Uint8Array(bytes.length), new Uint8Array(bytes.length)]
    let turn = 0
    const encMs = time(() => codec.encode(v, rng, ring[turn++ & 3]), budget)
    const into = new Float32Array(d)
    const decMs = time(() => codec.decode(bytes, d, into), budget)
    const ratio = (bytes.length / (4 * d)).toFixed(3)
    console.log(`${name.padEnd(10)} ${String(d).padEnd(10)} ${label.padEnd(10)} ${ratio.padStart(6)}   ${mbps(d, encMs)}        ${mbps(d, decMs)}        ${(encMs / copyMs).toFixed(0).padStart(6)}       ${(decMs / copyMs).toFixed(0).padStart(6)}`)
  }
}

const only = process.argv.indexOf('--codec')
if (only >= 0) {
  codecRows(process.argv[only + 1])
  process.exit(0)
}

let qsgd8Goal = 'goal: qsgd-8 rows missing'
console.log('codec throughput (MB/s of float32 input; ratio = time / plain copy time of the same vector)')
console.log('each codec in a process of its own, as a daemon runs one (a codec timed after the others in one')
console.log('process runs on code V8 optimized for them)')
console.log('model      d          codec       size   encode MB/s   decode MB/s   enc x copy   dec x copy')
for (const { label } of CODECS) {
  const child = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--codec', label, ...(quick ? ['--quick'] : [])], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
  if (child.status !== 0) throw new Error(`the ${label} rows failed (exit ${child.status})`)
  process.stdout.write(child.stdout)
  if (label === 'qsgd-8') {
    // the rows' encode and decode columns (MB/s), per size
    const rates = child.stdout.trim().split('\n').map((line) => line.trim().split(/\s+/).slice(4, 6).map(Number))
    const encode = Math.min(...rates.map(([e]) => e))
    const decode = Math.min(...rates.map(([, d]) => d))
    qsgd8Goal = `goal: qsgd-8 encode >= 1000 MB/s and decode >= 2000 MB/s a core: ${encode >= 1000 && decode >= 2000 ? 'met' : 'NOT met'} (slowest row ${encode} / ${decode} MB/s)`
  }
}
console.log(qsgd8Goal)

console.log('\naggregation, median ms per call into a reused output, as the daemon calls it (f = 1; ratio = time / mean time in the same setting)')
const rules: AggregationRule[] = ['mean', 'trimmed-mean', 'median', 'krum', 'multi-krum', 'centered-clip']
console.log(`model      n   ${rules.map((r) => r.padStart(20)).join('')}`)
for (const { name, d } of sizes) {
  for (const n of [3, 4, 5, 8]) {
    const gradients = Array.from({ length: n }, (_, i) => gaussian(d, 10 + i))
    const out = new Float32Array(d)
    let meanMs = 0
    const cells: string[] = []
    for (const rule of rules) {
      const aggregator = createAggregator(AggregationConfigSchema.parse({ rule, f: 1, clipIterations: 3 }))
      if (n < aggregator.minInputs()) {
        cells.push(`n/a (needs ${aggregator.minInputs()})`.padStart(20))
        continue
      }
      const ms = time(() => aggregator.aggregate(gradients, { out }), quick ? 100 : 600)
      if (rule === 'mean') meanMs = ms
      cells.push(`${ms.toFixed(1)} ms (${(ms / meanMs).toFixed(1)}x)`.padStart(20))
    }
    console.log(`${name.padEnd(10)} ${String(n).padEnd(3)} ${cells.join('')}`)
  }
}

console.log('\ntrimmed mean (f = 1), median and mean: the rules\' WebAssembly kernel against the JS path, median ms per call (ratio = kernel / JS)')
console.log(`model      n   ${['trimmed JS', 'trimmed kernel', 'median JS', 'median kernel', 'mean JS', 'mean kernel'].map((h) => h.padStart(18)).join('')}`)
for (const { name, d } of sizes) {
  for (const n of [3, 4, 5, 8, 15]) {
    const gradients = Array.from({ length: n }, (_, i) => gaussian(d, 10 + i))
    const out = new Float32Array(d)
    const budget = quick ? 100 : 400
    const js: number[] = []
    const kernel: number[] = []
    const medianJs: number[] = []
    const medianKernel: number[] = []
    const meanJs: number[] = []
    const meanKernel: number[] = []
    // alternated twice, so neither side always runs on a warmer machine
    for (let round = 0; round < 2; round++) {
      js.push(time(() => trimmedMeanInJs(gradients, d, 1, out), budget))
      kernel.push(time(() => aggregateTrimmedMean(gradients, d, 1, out), budget))
      medianJs.push(time(() => medianInJs(gradients, d, out), budget))
      medianKernel.push(time(() => aggregateMedian(gradients, d, out), budget))
      meanJs.push(time(() => meanInJs(gradients, d, out), budget))
      meanKernel.push(time(() => aggregateMean(gradients, d, out), budget))
    }
    const [a, b, c, e, m, k] = [js, kernel, medianJs, medianKernel, meanJs, meanKernel].map((xs) => Math.min(...xs))
    const cells = [`${a.toFixed(2)} ms`, `${b.toFixed(2)} ms (${(b / a).toFixed(2)}x)`, `${c.toFixed(2)} ms`, `${e.toFixed(2)} ms (${(e / c).toFixed(2)}x)`, `${m.toFixed(2)} ms`, `${k.toFixed(2)} ms (${(k / m).toFixed(2)}x)`]
    console.log(`${name.padEnd(10)} ${String(n).padEnd(3)} ${cells.map((x) => x.padStart(18)).join('')}`)
  }
}

// its JS path runs ~0.5 us a coordinate: a warm-up and three timed calls per side, alternated
console.log('\nmean around the median (f = 1): the kernel against the JS path, median ms of 3 calls (ratio = kernel / JS)')
const fewCalls = (fn: () => void): number => {
  fn()
  return median([0, 1, 2].map(() => {
    const t0 = performance.now()
    fn()
    return performance.now() - t0
  }))
}
for (const { name, d } of sizes) {
  for (const n of [4, 5, 8]) {
    const gradients = Array.from({ length: n }, (_, i) => gaussian(d, 10 + i))
    const out = new Float32Array(d)
    const js = fewCalls(() => meanAroundMedianInJs(gradients, d, 1, out))
    const kernel = fewCalls(() => aggregateMeanAroundMedian(gradients, d, 1, out))
    console.log(`${name.padEnd(10)} ${String(n).padEnd(3)} ${`${js.toFixed(2)} ms`.padStart(14)} ${`${kernel.toFixed(2)} ms (${(kernel / js).toFixed(3)}x)`.padStart(22)}`)
  }
}
