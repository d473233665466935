/**
 * The trimmed mean, median and mean around the median of 3 to 15 gradients (and their plain mean,
 * from 2) as a WebAssembly SIMD kernel: each coordinate's n values sorted by Batcher's odd-even
 * merge network (sorted-columns.ts) on four coordinates at once (f32x4.min / f32x4.max
 * compare-exchanges), then combined as the JS paths combine them, so the result is the same to the
 * bit (coordinate-wise.ts and mean-around-median.ts keep those paths as the reference and as the
 * fallback where WebAssembly is missing). The plain mean skips the network and sums in input order.
 *
 * Why the same bits: for finite values (inputs are checked at the wire boundary) f32x4.min and
 * f32x4.max order -0 before +0, as the JS paths' integer keys do, so row r after the network holds
 * the r-th smallest value of each coordinate exactly as there. The trimmed mean sums rows f..n-f-1
 * in ascending order in float64 starting from +0, divides by n - 2f and rounds to float32 (JS:
 * `sum += ...; out[j] = sum / kept`); the median takes the middle row, or (lower + upper) / 2 in
 * float64 for even n.
 *
 * Why: the JS paths run 11-15 ns a coordinate for four gradients (the default 4-peer job with
 * f = 1) and 25-100 ns for five to eight (bench/codec-throughput.ts, 1.86 M coordinates, 2-core
 * Zen 4): ~130 ms a step for resnet18's 11.7 M. Here a block of coordinates of every gradient is
 * copied into the kernel's memory (a memcpy), sorted and combined there, and copied out.
 */
import { assembleModule, createWasmMemory, functionBody, I32, i32Add, localGet, localSet, SIMD, uleb, V128, wasmApi } from '../core/wasm-assembler.js'
import { oddEvenMergeNetwork } from './sorted-columns.js'

/**
 * below this many coordinates the rules run their JS paths (the kernel's copies and call; with
 * four inputs at 1,024 coordinates it already took 3.7 against 8.7 us for the trimmed mean and
 * 1.9 against 6.1 for the mean), which a short gradient or reduce-scatter slice keeps exercising
 */
export const RANKED_MIN_LENGTH = 1024
/** the most inputs the kernels take (a network of 15 inputs has 56 compare-exchanges) */
export const MAX_RANKED_INPUTS = 15
/** coordinates per block: n rows of 8 KiB and the output row stay in L2 */
const BLOCK = 2048
const ROW_BYTES = BLOCK * 4

/**
 * what the kernel makes of each coordinate's values: the trimmed mean or median of the sorted
 * values, or the plain mean of the values in input order (no sorting)
 */
export type RankCombine =
  | { readonly kind: 'trimmed-mean', readonly f: number }
  | { readonly kind: 'median' }
  | { readonly kind: 'mean' }
  | { readonly kind: 'mean-around-median', readonly f: number }

const f32x4 = { min: [0xfd, ...uleb(232)], max: [0xfd, ...uleb(233)] }
const f64x2Div = [0xfd, ...uleb(243)]
const f64x2Gt = [0xfd, ...uleb(74)]
const i64x2 = { sub: [0xfd, ...uleb(209)], eq: [0xfd, ...uleb(214)], leS: [0xfd, ...uleb(218)], geS: [0xfd, ...uleb(219)] }
const bitselect = [0xfd, ...uleb(82)]
const v128Const = (bytes: Uint8Array): number[] => [...SIMD['v128.const'], ...bytes]
const f64Pair = (x: number): number[] => v128Const(new Uint8Array(new Float64Array([x, x]).buffer))
const i64Pair = (x: number): number[] => v128Const(new Uint8Array(new BigInt64Array([BigInt(x), BigInt(x)]).buffer))
/** lanes 2 and 3 of a f32x4 moved to lanes 0 and 1 (for promote_low) */
const HIGH_HALF = [8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15]
/** lanes 0, 1 of the first operand and 0, 1 of the second (two demoted f64x2 as one f32x4) */
const JOIN_LOW_HALVES = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23]

/**
 * (in, out, count): sorts and combines `count` coordinates (a multiple of 4) whose n values lie in
 * rows BLOCK floats apart from byte offset `in`, writing the results from byte offset `out`.
 * Locals: 3 parameters, then x_0..x_{n-1}, t, lo, hi (v128), end (i32), then mean-around-median's
 * m, l, a, b, c, s (v128).
 */
function kernel(n: number, combine: RankCombine): number[] {
  const IN = 0
  const OUT = 1
  const COUNT = 2
  const x = (r: number): number => 3 + r
  const T = 3 + n
  const LO = T + 1
  const HI = T + 2
  const END = T + 3
  const [M, L, A, B, C, S] = [END + 1, END + 2, END + 3, END + 4, END + 5, END + 6]
  // the mean sums the values in input order, as the JS mean does: no network
  const network = combine.kind === 'mean' ? new Int32Array(0) : oddEvenMergeNetwork(n)
  const exchanges: number[] = []
  for (let c = 0; c < network.length; c += 2) {
    const [i, j] = [network[c], network[c + 1]]
    exchanges.push(
      ...localGet(x(i)), ...localSet(T),
      ...localGet(T), ...localGet(x(j)), ...f32x4.min, ...localSet(x(i)),
      ...localGet(T), ...localGet(x(j)), ...f32x4.max, ...localSet(x(j))
    )
  }
  const promoteLow = (r: number): number[] => [...localGet(x(r)), ...SIMD['f64x2.promote_low_f32x4']]
  const promoteHigh = (r: number): number[] => [...localGet(x(r)), ...localGet(x(r)), ...SIMD['i8x16.shuffle'], ...HIGH_HALF, ...SIMD['f64x2.promote_low_f32x4']]
  /** float64 sums (lo: lanes 0, 1; hi: lanes 2, 3) of rows `rows` in order from `start`, divided by `divisor`, as one f32x4 */
  const sumOfRows = (rows: readonly number[], start: number[], divisor: number): number[] => [
    ...start, ...localSet(LO), ...start, ...localSet(HI),
    ...rows.flatMap((r) => [
      ...localGet(LO), ...promoteLow(r), ...SIMD['f64x2.add'], ...localSet(LO),
      ...localGet(HI), ...promoteHigh(r), ...SIMD['f64x2.add'], ...localSet(HI)
    ]),
    ...localGet(LO), ...f64Pair(divisor), ...f64x2Div, ...SIMD['f32x4.demote_f64x2_zero'],
    ...localGet(HI), ...f64Pair(divisor), ...f64x2Div, ...SIMD['f32x4.demote_f64x2_zero'],
    ...SIMD['i8x16.shuffle'], ...JOIN_LOW_HALVES
  ]
  /**
   * mean-around-median on two lanes (`promote`: the half's rows in float64), as
   * mean-around-median.ts computes it: m the median in float64; l counts the low end's drops, so
   * the run kept is rows l..l+n-f-1: f times, with the ends a (row l) and b (row n-1-k+l) picked by
   * l, the low end goes when m - a > b - m; then the rows in the run summed in ascending order from
   * +0 (a row outside adds +0, which changes no such sum) and divided by n - f.
   */
  const meanAroundMedianHalf = (promote: (r: number) => number[], f: number): number[] => {
    const kept = n - f
    const mid = n >> 1
    const code = n % 2 === 1
      ? [...promote(mid), ...localSet(M)]
      : [...promote(mid - 1), ...promote(mid), ...SIMD['f64x2.add'], ...f64Pair(2), ...f64x2Div, ...localSet(M)]
    code.push(...i64Pair(0), ...localSet(L))
    /** row `row(j)` of the lanes whose l is j, for j = 0..k */
    const pick = (k: number, row: (j: number) => number, into: number): number[] => {
      const picked = [...promote(row(0)), ...localSet(into)]
      for (let j = 1; j <= k; j++) picked.push(...promote(row(j)), ...localGet(into), ...localGet(L), ...i64Pair(j), ...i64x2.eq, ...bitselect, ...localSet(into))
      return picked
    }
    for (let k = 0; k < f; k++) {
      code.push(
        ...pick(k, (j) => j, A), ...pick(k, (j) => n - 1 - k + j, B),
        ...localGet(M), ...localGet(A), ...SIMD['f64x2.sub'], ...localGet(B), ...localGet(M), ...SIMD['f64x2.sub'], ...f64x2Gt, ...localSet(C),
        // a true lane is all ones (-1): l - (-1) = l + 1
        ...localGet(L), ...localGet(C), ...i64x2.sub, ...localSet(L)
      )
    }
    code.push(...f64Pair(0), ...localSet(S))
    for (let r = 0; r < n; r++) {
      // rows f..n-f-1 are in every run; the others where l <= r <= l + kept - 1
      const value = r >= f && r <= kept - 1
        ? promote(r)
        : [...promote(r), ...localGet(L), ...i64Pair(r), ...i64x2.leS, ...localGet(L), ...i64Pair(r - kept + 1), ...i64x2.geS, ...SIMD['v128.and'], ...SIMD['v128.and']]
      code.push(...localGet(S), ...value, ...SIMD['f64x2.add'], ...localSet(S))
    }
    code.push(...localGet(S), ...f64Pair(kept), ...f64x2Div)
    return code
  }

  let result: number[]
  if (combine.kind === 'mean-around-median') {
    result = [
      ...meanAroundMedianHalf(promoteLow, combine.f), ...SIMD['f32x4.demote_f64x2_zero'],
      ...meanAroundMedianHalf(promoteHigh, combine.f), ...SIMD['f32x4.demote_f64x2_zero'],
      ...SIMD['i8x16.shuffle'], ...JOIN_LOW_HALVES
    ]
  } else if (combine.kind !== 'median') {
    const f = combine.kind === 'mean' ? 0 : combine.f
    const rows = Array.from({ length: n - 2 * f }, (_, k) => f + k)
    // from +0, as the JS sum starts
    result = sumOfRows(rows, f64Pair(0), rows.length)
  } else if (n % 2 === 1) {
    result = localGet(x(n >> 1))
  } else {
    // (lower + upper) / 2: the first add from the lower value itself, not from +0
    const mid = n >> 1
    result = [
      ...promoteLow(mid - 1), ...localSet(LO), ...promoteHigh(mid - 1), ...localSet(HI),
      ...localGet(LO), ...promoteLow(mid), ...SIMD['f64x2.add'], ...localSet(LO),
      ...localGet(HI), ...promoteHigh(mid), ...SIMD['f64x2.add'], ...localSet(HI),
      ...localGet(LO), ...f64Pair(2), ...f64x2Div, ...SIMD['f32x4.demote_f64x2_zero'],
      ...localGet(HI), ...f64Pair(2), ...f64x2Div, ...SIMD['f32x4.demote_f64x2_zero'],
      ...SIMD['i8x16.shuffle'], ...JOIN_LOW_HALVES
    ]
  }
  const code = [
    ...localGet(COUNT), 0x41, 2, 0x74, ...localGet(IN), i32Add, ...localSet(END), // end = in + (count << 2)
    0x02, 0x40, 0x03, 0x40, // block, loop
    ...localGet(IN), ...localGet(END), 0x4f, 0x0d, 1, // if in >= end (unsigned) break
    ...Array.from({ length: n }, (_, r) => [...localGet(IN), ...SIMD['v128.load'], 2, ...uleb(r * ROW_BYTES), ...localSet(x(r))]).flat(),
    ...exchanges,
    ...localGet(OUT), ...result, ...SIMD['v128.store'], 2, 0,
    ...localGet(IN), 0x41, 16, i32Add, ...localSet(IN),
    ...localGet(OUT), 0x41, 16, i32Add, ...localSet(OUT),
    0x0c, 0, 0x0b, 0x0b, // br loop, end loop, end block
    0x0b
  ]
  return functionBody([[n + 3, V128], [1, I32], [6, V128]], code)
}

/** compiled modules by (n, combine): each is assembled once per process, on first use */
const compiled = new Map<string, object>()

const keyOf = (n: number, combine: RankCombine): string => `${n}:${combine.kind}:${'f' in combine ? combine.f : ''}`

function compile(n: number, combine: RankCombine): object {
  const key = keyOf(n, combine)
  let module = compiled.get(key)
  if (module === undefined) {
    module = new (wasmApi().Module)(assembleModule({ params: [I32, I32, I32], results: [] }, [['ranked', kernel(n, combine)]]))
    compiled.set(key, module)
  }
  return module
}

interface Instance {
  readonly run: (input: number, output: number, count: number) => void
  readonly rows: Float32Array
}

/**
 * an instance and its memory by (n, combine), made on first use and kept: a fresh memory and
 * instance per call cost ~70 us (the kernel took 87 against JS's 37 us for 4,096 coordinates). A
 * call runs to its end synchronously, so one instance per kind is never used by two calls at once.
 */
const instances = new Map<string, Instance>()

function instanceFor(n: number, combine: RankCombine): Instance {
  const key = keyOf(n, combine)
  let instance = instances.get(key)
  if (instance === undefined) {
    const memory = createWasmMemory((n + 1) * ROW_BYTES)
    const run = new (wasmApi().Instance)(compile(n, combine), { env: { memory } }).exports.ranked as Instance['run']
    instance = { run, rows: new Float32Array(memory.buffer) }
    instances.set(key, instance)
  }
  return instance
}

/** the fewest inputs the kernel takes: 2 for the mean, 3 for the rest */
const fewest = (combine: RankCombine): number => combine.kind === 'mean' ? 2 : 3

/** Whether the kernel takes n inputs (3..MAX_RANKED_INPUTS; the mean 2..) and this runtime has WebAssembly SIMD. */
export function rankedColumnsAvailable(n: number, combine: RankCombine = { kind: 'median' }): boolean {
  if (n < fewest(combine) || n > MAX_RANKED_INPUTS) return false
  try {
    compile(3, { kind: 'median' })
    return true
  } catch {
    return false
  }
}

/**
 * Writes into `out` each coordinate's `combine` of the d values the n = gradients.length inputs
 * hold (3 <= n <= MAX_RANKED_INPUTS, the mean 2 <=; finite values; trimmed mean: n > 2f). The same
 * bits as coordinate-wise.ts's JS paths. Throws where WebAssembly SIMD is missing
 * (rankedColumnsAvailable), or RangeError for an n or f out of range.
 */
export function aggregateRankedColumns(gradients: readonly Float32Array[], d: number, combine: RankCombine, out: Float32Array): Float32Array {
  const n = gradients.length
  if (n < fewest(combine) || n > MAX_RANKED_INPUTS) throw new RangeError(`the ranked-columns kernel's ${combine.kind} takes ${fewest(combine)} to ${MAX_RANKED_INPUTS} inputs, got ${n}`)
  if (combine.kind === 'trimmed-mean' && !(Number.isInteger(combine.f) && combine.f >= 0 && 2 * combine.f < n)) throw new RangeError(`a trimmed mean of ${n} inputs trims f < ${n / 2} per side, got f = ${combine.f}`)
  if (combine.kind === 'mean-around-median' && !(Number.isInteger(combine.f) && combine.f >= 0 && 2 * combine.f < n)) throw new RangeError(`a mean around the median of ${n} inputs drops f < ${n / 2}, got f = ${combine.f}`)
  const { run, rows } = instanceFor(n, combine)
  const outAt = n * BLOCK
  for (let start = 0; start < d; start += BLOCK) {
    const length = Math.min(BLOCK, d - start)
    const padded = (length + 3) & ~3
    for (let r = 0; r < n; r++) {
      rows.set(gradients[r].subarray(start, start + length), r * BLOCK)
      // the last block's lanes past d: zeros, computed and not copied out
      if (padded > length) rows.fill(0, r * BLOCK + length, r * BLOCK + padded)
    }
    run(0, outAt * 4, padded)
    out.set(rows.subarray(outAt, outAt + length), start)
  }
  return out
}
