/**
 * The fp16 codec's bucket loops (see fp16-codec.ts) as WebAssembly SIMD kernels, eight values per
 * iteration, giving the same bits as the scalar loops: the JS conversion took ~10 ns a value (fp16
 * encoded at ~0.3 GB/s and decoded at ~0.2-0.26, 5-30x slower than qsgd 8-bit).
 *
 * Kernels (one signature for both; a window of whole buckets, `bucket` a multiple of 8):
 *   encode16(values, codes: i32 byte offsets, n: i32, unused: f64, bucket: i32) -> i32
 *     each bucket's largest magnitude m (f32x4.max over |v|) to scales[b] (float32, right after
 *     the codes: codes + 2n), then every value's code: the half nearest to v * f, f = 2^15 / m (0
 *     where m = 0), the product in float64 rounded to float32 as the scalar loop stores it, then
 *     to the half nearest, ties to even, through the subnormals (the branch-free conversion of
 *     F. Giesen, "float_to_half_fast3_rtne", 2016), -0 written as +0.
 *     Returns 1 when a bucket's m is not finite (the input holds NaN or Inf; the caller refuses
 *     it), else 0.
 *   decode16(values, codes: i32 byte offsets, n: i32, unused: f64, bucket: i32) -> i32
 *     value = half(code) * (scales[b] / 2^15), the product in float64 rounded to float32, as the
 *     scalar decoder computes it (scales read from codes + 2n). Returns 1 when a code is not one an
 *     encoder writes (magnitude over 2^15, Inf/NaN, or -0); the caller then names it.
 * Opcodes: WebAssembly core spec 2.0 with SIMD.
 */
import { assembleModule, createWasmMemory, F32, F64, functionBody, I32, i32Add, localGet, localSet, SIMD, simd, sleb, V128, wasmApi, WASM_PAGE, type WasmMemory } from '../core/wasm-assembler.js'

// parameters (both kernels), then locals
const VALUES = 0
const CODES = 1
const N = 2
const BUCKET = 4
const P = 5 // i32: the value being read (encode) or written (decode)
const BEND = 6 // i32: the bucket's end in values
const END = 7 // i32: the window's end in values
const Q = 8 // i32: the code being written (encode) or read (decode)
const S = 9 // i32: the bucket's scale
const R = 10 // i32: encode's max pass
const BAD = 11 // i32
const MAX = 12 // f32
const X = 13 // v128 (encode: scaled values; decode: widened codes)
const SG = 14
const A = 15
const ACC = 16 // encode: the running max; decode: the bad-code flags
const SPLAT = 17 // f64x2: encode's factor, decode's unit
const C = 18 // encode: four values; decode: eight codes

const i32Const = (x: number): number[] => [0x41, ...sleb(x)]
const f32Const = (x: number): number[] => [0x43, ...new Uint8Array(new Float32Array([x]).buffer)]
const f64Const = (x: number): number[] => [0x44, ...new Uint8Array(new Float64Array([x]).buffer)]
const i32x4 = (x: number): number[] => [...SIMD['v128.const'], ...new Uint8Array(new Int32Array([x, x, x, x]).buffer)]
const i16x8 = (x: number): number[] => [...SIMD['v128.const'], ...new Uint8Array(new Int16Array(8).fill(x).buffer)]
const f32x4 = (x: number): number[] => [...SIMD['v128.const'], ...new Uint8Array(new Float32Array([x, x, x, x]).buffer)]
const shuffle = (lanes: readonly number[]): number[] => [...SIMD['i8x16.shuffle'], ...lanes]
/** v128.load / store with the memarg 16-byte alignment and `offset` (< 128) */
const load = (offset: number): number[] => [...SIMD['v128.load'], 4, offset]
const store = (offset: number): number[] => [...SIMD['v128.store'], 4, offset]
const tee = (i: number): number[] => [0x22, i]
const { 'v128.and': and, 'v128.or': or, 'v128.xor': xor, 'v128.andnot': andnot } = SIMD
const bitselect = simd(82)
const f32x4Max = simd(233)
const i32x4LtU = simd(58)
const i16x8Eq = simd(45)
const i16x8GtU = simd(50)
const f32x4ExtractLane = simd(31)
const extendHigh = simd(170)
const HIGH_HALF = [8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15]
const LOW_PAIRS = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23]

/** the half bits (i32x4) of the float32 lanes of local X (|x| < 65520, finite) */
const toHalf = [
  ...localGet(X), ...i32x4(-0x80000000), ...and, ...localSet(SG),
  ...localGet(X), ...localGet(SG), ...xor, ...localSet(A),
  // subnormal half: |x| + 0.5 rounds x to a multiple of 2^-24 (ties to even); minus 0.5's bits
  ...localGet(A), ...f32x4(0.5), ...SIMD['f32x4.add'], ...i32x4(0x3f000000), ...SIMD['i32x4.sub'],
  // normal half: rebias the exponent, round the 13 dropped bits to nearest even, shift
  ...localGet(A), ...i32x4((-112 << 23) + 0xfff), ...SIMD['i32x4.add'],
  ...localGet(A), ...i32Const(13), ...SIMD['i32x4.shr_u'], ...i32x4(1), ...and, ...SIMD['i32x4.add'],
  ...i32Const(13), ...SIMD['i32x4.shr_u'],
  ...localGet(A), ...i32x4(113 << 23), ...i32x4LtU, ...bitselect,
  ...localGet(SG), ...i32Const(16), ...SIMD['i32x4.shr_u'], ...or,
  // -0 (a zero or a tiny negative value) is written as +0
  0x22, A, ...localGet(A), ...i32x4(0x8000), ...SIMD['i32x4.eq'], ...andnot
]

/** v * factor in float64, rounded to float32 (as the scalar loop's float32 store of the product), for the f32x4 on the stack, into X */
const scaledFour = [
  ...localSet(C),
  ...localGet(C), ...SIMD['f64x2.promote_low_f32x4'], ...localGet(SPLAT), ...SIMD['f64x2.mul'], ...SIMD['f32x4.demote_f64x2_zero'],
  ...localGet(C), ...localGet(C), ...shuffle(HIGH_HALF), ...SIMD['f64x2.promote_low_f32x4'], ...localGet(SPLAT), ...SIMD['f64x2.mul'], ...SIMD['f32x4.demote_f64x2_zero'],
  ...shuffle(LOW_PAIRS), ...localSet(X)
]

/** both kernels' start: P and Q at the window's values and codes, END past the values, S at the scales (after the codes) */
const windowPointers = [
    ...localGet(VALUES), ...localSet(P),
    ...localGet(CODES), ...localSet(Q),
    ...localGet(VALUES), ...localGet(N), ...i32Const(2), 0x74, i32Add, ...localSet(END),
    ...localGet(CODES), ...localGet(N), ...i32Const(1), 0x74, i32Add, ...localSet(S),
]

function encode16Body(): number[] {
  const code = [
    ...windowPointers,
    0x02, 0x40, 0x03, 0x40, // block, loop: a bucket
    ...localGet(P), ...localGet(END), 0x4f, 0x0d, 1,
    ...localGet(P), ...localGet(BUCKET), ...i32Const(2), 0x74, i32Add, ...localSet(BEND),
    // pass 1: the largest magnitude (NaN wins f32x4.max, so a NaN or Inf shows in it)
    ...f32x4(0), ...localSet(ACC),
    ...localGet(P), ...localSet(R),
    0x02, 0x40, 0x03, 0x40,
    ...localGet(R), ...localGet(BEND), 0x4f, 0x0d, 1,
    ...localGet(ACC), ...localGet(R), ...load(0), ...SIMD['f32x4.abs'], ...f32x4Max, ...localSet(ACC),
    ...localGet(R), ...i32Const(16), i32Add, ...localSet(R),
    0x0c, 0, 0x0b, 0x0b,
    // the largest lane: max with the halves swapped, then with the pairs swapped
    ...localGet(ACC), ...localGet(ACC), ...localGet(ACC), ...shuffle([8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7]), ...f32x4Max, ...localSet(ACC),
    ...localGet(ACC), ...localGet(ACC), ...localGet(ACC), ...shuffle([4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11]), ...f32x4Max,
    ...f32x4ExtractLane, 0, ...localSet(MAX),
    ...localGet(S), ...localGet(MAX), 0x38, 2, 0, // f32.store scales[b]
    ...localGet(S), ...i32Const(4), i32Add, ...localSet(S),
    // bad |= (max - max != 0)
    ...localGet(BAD), ...localGet(MAX), ...localGet(MAX), 0x93, ...f32Const(0), 0x5c, 0x72, ...localSet(BAD),
    // factor = max == 0 ? 0 : 2^15 / max, in float64 (a float32 quotient overflows for max < 2^-111)
    ...f64Const(32768), ...localGet(MAX), 0xbb, 0xa3, ...f64Const(0), ...localGet(MAX), ...f32Const(0), 0x5c, 0x1b,
    ...SIMD['f64x2.splat'], ...localSet(SPLAT),
    // pass 2: eight codes an iteration
    0x02, 0x40, 0x03, 0x40,
    ...localGet(P), ...localGet(BEND), 0x4f, 0x0d, 1,
    ...localGet(Q),
    ...localGet(P), ...load(0), ...scaledFour, ...toHalf,
    ...localGet(P), ...load(16), ...scaledFour, ...toHalf,
    ...SIMD['i16x8.narrow_i32x4_u'], ...store(0),
    ...localGet(P), ...i32Const(32), i32Add, ...localSet(P),
    ...localGet(Q), ...i32Const(16), i32Add, ...localSet(Q),
    0x0c, 0, 0x0b, 0x0b,
    0x0c, 0, 0x0b, 0x0b,
    ...localGet(BAD),
    0x0b
  ]
  return functionBody([[7, I32], [1, F32], [6, V128]], code)
}

/** the float32 (as i32x4 bits) of the four halves in local X's lanes (codes checked elsewhere) */
const fromHalf = [
  ...localGet(X), ...i32x4(0x7fff), ...and, ...i32Const(13), ...SIMD['i32x4.shl'], ...localSet(A),
  // zero or subnormal (exponent 0): renormalise through a float subtraction of 2^-14 (exact)
  ...localGet(A), ...i32x4((112 << 23) + (1 << 23)), ...SIMD['i32x4.add'], ...f32x4(2 ** -14), ...SIMD['f32x4.sub'],
  ...localGet(A), ...i32x4(112 << 23), ...SIMD['i32x4.add'],
  ...localGet(A), ...i32x4(0x7c00 << 13), ...and, ...i32x4(0), ...SIMD['i32x4.eq'], ...bitselect,
  ...localGet(X), ...i32x4(0x8000), ...and, ...i32Const(16), ...SIMD['i32x4.shl'], ...or
]

/** x * unit in float64, rounded to float32: the f32x4 on the stack's lanes 0-1 (or 2-3) */
const scaled = (high: boolean): number[] => [
  ...(high ? [...localGet(SG), ...localGet(SG), ...shuffle(HIGH_HALF)] : [...localGet(SG)]),
  ...SIMD['f64x2.promote_low_f32x4'], ...localGet(SPLAT), ...SIMD['f64x2.mul'], ...SIMD['f32x4.demote_f64x2_zero']
]
/** four values from local X's codes, stored at P + offset */
const decodeFour = (offset: number): number[] => [
  ...localGet(P), ...fromHalf, ...localSet(SG), ...scaled(false), ...scaled(true), ...shuffle(LOW_PAIRS), ...store(offset)
]

function decode16Body(): number[] {
  const code = [
    ...windowPointers,
    ...i32x4(0), ...localSet(ACC),
    0x02, 0x40, 0x03, 0x40,
    ...localGet(P), ...localGet(END), 0x4f, 0x0d, 1,
    ...localGet(P), ...localGet(BUCKET), ...i32Const(2), 0x74, i32Add, ...localSet(BEND),
    // unit = scale / 2^15 in float64 (exact)
    ...localGet(S), 0x2a, 2, 0, 0xbb, ...f64Const(32768), 0xa3, ...SIMD['f64x2.splat'], ...localSet(SPLAT),
    ...localGet(S), ...i32Const(4), i32Add, ...localSet(S),
    0x02, 0x40, 0x03, 0x40,
    ...localGet(P), ...localGet(BEND), 0x4f, 0x0d, 1,
    ...localGet(Q), ...load(0), ...localSet(C),
    // a code over 2^15 in magnitude (Inf and NaN too) or -0: not one an encoder writes
    ...localGet(ACC),
    ...localGet(C), ...i16x8(0x7fff), ...and, ...i16x8(0x7800), ...i16x8GtU, ...or,
    ...localGet(C), ...i16x8(-0x8000), ...i16x8Eq, ...or, ...localSet(ACC),
    ...localGet(C), ...SIMD['i32x4.extend_low_i16x8_u'], ...localSet(X), ...decodeFour(0),
    ...localGet(C), ...extendHigh, ...localSet(X), ...decodeFour(16),
    ...localGet(P), ...i32Const(32), i32Add, ...localSet(P),
    ...localGet(Q), ...i32Const(16), i32Add, ...localSet(Q),
    0x0c, 0, 0x0b, 0x0b,
    0x0c, 0, 0x0b, 0x0b,
    ...localGet(ACC), ...SIMD['v128.any_true'],
    0x0b
  ]
  return functionBody([[7, I32], [1, F32], [6, V128]], code)
}

export interface Fp16Kernel {
  /** room for a window of `n` values (whole buckets of a multiple of 8), growing the memory when needed */
  reserve(n: number): void
  /** the window's float32 values (encode: fill before encode(); decode: read after decode()) */
  values(): Float32Array
  /** the window's codes, one uint16 per value (encode: read after; decode: fill before) */
  codes(): Uint16Array
  /** room for one float32 scale per bucket of the window, in order (encode: read after; decode: fill before) */
  scales(): Float32Array
  /** the window's scales and codes from its values; false when a value is NaN or Inf */
  encode(bucketSize: number): boolean
  /** the window's values from its codes and scales; false when a code is not one an encoder writes */
  decode(bucketSize: number): boolean
}

let compiled: object | undefined

/**
 * The kernels with their own memory: a window's values (4 bytes each), its codes (2) and its
 * buckets' scales; throws without WebAssembly SIMD.
 */
export function createFp16Kernel(): Fp16Kernel {
  const api = wasmApi()
  compiled ??= new api.Module(assembleModule({ params: [I32, I32, I32, F64, I32], results: [I32] }, [['encode16', encode16Body()], ['decode16', decode16Body()]]))
  const memory: WasmMemory = createWasmMemory(WASM_PAGE)
  const instance = new api.Instance(compiled, { env: { memory } })
  const encode16 = instance.exports.encode16 as (values: number, codes: number, n: number, unused: number, bucket: number) => number
  const decode16 = instance.exports.decode16 as (values: number, codes: number, n: number, unused: number, bucket: number) => number
  let count = 0
  return {
    reserve(n) {
      // values, codes, then a scale per bucket (of 8 values or more)
      const needed = 6 * n + 4 * (n >>> 3)
      if (memory.buffer.byteLength < needed) memory.grow(Math.ceil((needed - memory.buffer.byteLength) / WASM_PAGE))
      count = n
    },
    values: () => new Float32Array(memory.buffer, 0, count),
    codes: () => new Uint16Array(memory.buffer, 4 * count, count),
    scales: () => new Float32Array(memory.buffer, 6 * count, count >>> 3),
    encode: (bucketSize) => encode16(0, 4 * count, count, 0, bucketSize) === 0,
    decode: (bucketSize) => decode16(0, 4 * count, count, 0, bucketSize) === 0
  }
}
