/**
 * qsgd's bucket loop (see qsgd-codec.ts) as a WebAssembly SIMD kernel, four values a group,
 * giving the same codes as the scalar loop bit for bit: the scaled magnitudes, their floor and
 * fraction and the Bernoulli threshold in float64 lanes (exact, as in JS), and the splitmix32
 * draws in i32x4 lanes, each lane at its value's position in the scalar sequence. At 4 and 2 bits
 * an iteration takes two or four groups and packs their codes into four bytes by shuffles, as the
 * scalar loop ORs them in (mlp-large: 0.5-0.6 -> 1.7-1.9 GB/s).
 *
 * Kernels (one signature for all three):
 *   encode(values, codes: i32 byte offsets, n: i32 (a multiple of 32 / bits), scale: f64, state: i32)
 *     -> i32 state after the n draws (the module's bits: createQsgdKernel);
 *   decode(codes, values: i32 byte offsets, n: i32 (a multiple of 4), step: f64, unused: i32)
 *     -> i32 1 if a code is the sign bit alone ("-0", refused by the caller), else 0; each value
 *     is signed level x step in float64, rounded to float32, as the scalar decoder computes it
 *     (the module's bits; codes packed as the encoder packs them, starting on a byte).
 *   sumsq8(values: i32 byte offset, unused, n: i32 (even), unused, unused) -> 0, the bucket's sum
 *     of squares in float64 at byte 0: even and odd positions summed apart in order, then added
 *     (as sumOfSquares in qsgd-codec.ts computes it).
 * Opcodes: WebAssembly core spec 2.0 with SIMD.
 */
import { assembleModule, createWasmMemory, F64, functionBody, I32, i32Add, localGet, localSet, SIMD, sleb, V128, wasmApi, WASM_PAGE, type WasmMemory } from '../core/wasm-assembler.js'

const GOLDEN = 0x9e3779b9
const MIX1 = 0x85ebca6b
const MIX2 = 0xc2b2ae35

// parameters, then locals
const VALUES = 0
const CODES = 1
const N = 2
const SCALE = 3
const STATE = 4
const OFF = 5
const END = 6
const ST = 7 // i32x4: the generator state of each lane's value
const SCL = 8 // f64x2 splat of scale
const LIM = 9 // f64x2 splat of 127
const TWO32 = 10 // f64x2 splat of 2^32
const V = 11
const ALO = 12
const AHI = 13
const LLO = 14
const LHI = 15
const Z = 16
const LVL = 17
// packing's operands (4- and 2-bit codes)
const PA = 18
const PB = 19
const PC = 20
const PD = 21

const f64Const = (x: number): number[] => {
  const bytes = new Uint8Array(new Float64Array([x]).buffer)
  return [0x44, ...bytes]
}
const i32Const = (x: number): number[] => [0x41, ...sleb(x)]
const v128Const = (lanes: readonly number[]): number[] => [...SIMD['v128.const'], ...new Uint8Array(new Int32Array(lanes).buffer)]
const shuffle = (lanes: readonly number[]): number[] => [...SIMD['i8x16.shuffle'], ...lanes]
const memarg = [0, 0]

const f64x2Splat = SIMD['f64x2.splat']
const i32x4Splat = SIMD['i32x4.splat']
const f32x4Abs = SIMD['f32x4.abs']
const f32x4Lt = SIMD['f32x4.lt']
const f64x2Lt = SIMD['f64x2.lt']
const f64x2Mul = SIMD['f64x2.mul']
const f64x2Sub = SIMD['f64x2.sub']
const f64x2Min = SIMD['f64x2.min']
const promoteLow = SIMD['f64x2.promote_low_f32x4']
const truncSatZero = SIMD['i32x4.trunc_sat_f64x2_s_zero']
const convertLowS = SIMD['f64x2.convert_low_i32x4_s']
const convertLowU = SIMD['f64x2.convert_low_i32x4_u']
const { 'i32x4.ne': i32x4Ne, 'i32x4.shr_u': i32x4ShrU, 'i32x4.add': i32x4Add, 'i32x4.sub': i32x4Sub, 'i32x4.mul': i32x4Mul } = SIMD
const { 'v128.and': and, 'v128.or': or, 'v128.xor': xor } = SIMD
const narrow16 = SIMD['i16x8.narrow_i32x4_u']
const narrow8 = SIMD['i8x16.narrow_i16x8_u']
const store32Lane = [...SIMD['v128.store32_lane'], ...memarg, 0]
const HIGH_HALF = [8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15]

/** z ^= z >>> shift, on local Z */
const xorShift = (shift: number): number[] => [...localGet(Z), ...localGet(Z), ...i32Const(shift), ...i32x4ShrU, ...xor, ...localSet(Z)]
/** (|v| of lanes 0-1 or 2-3) * scale, at most 127, as f64x2 */
const scaledHalf = (high: boolean): number[] => [
  ...localGet(V), ...f32x4Abs,
  ...(high ? [...localGet(V), ...f32x4Abs, ...shuffle(HIGH_HALF)] : []),
  ...promoteLow, ...localGet(SCL), ...f64x2Mul, ...localGet(LIM), ...f64x2Min
]
/** all-ones per 64-bit lane where draw < fraction * 2^32 */
const roundUpHalf = (a: number, level: number, high: boolean): number[] => [
  ...localGet(Z), ...(high ? [...localGet(Z), ...shuffle(HIGH_HALF)] : []), ...convertLowU,
  ...localGet(a), ...localGet(level), ...convertLowS, ...f64x2Sub, ...localGet(TWO32), ...f64x2Mul,
  ...f64x2Lt
]

/**
 * The codes of the four values at values + off + 16 g (g: the group of four in the iteration), as
 * i32x4 on the stack: each lane's draw at its value's place in the scalar sequence (ST advances
 * four draws), level | sign where v < 0 and level != 0.
 */
const groupCodes = (g: number, signBit: number): number[] => [
  ...localGet(VALUES), ...localGet(OFF), i32Add, ...SIMD['v128.load'], 2, 16 * g, ...localSet(V),
  ...scaledHalf(false), ...localSet(ALO),
  ...scaledHalf(true), ...localSet(AHI),
  ...localGet(ALO), ...truncSatZero, ...localSet(LLO),
  ...localGet(AHI), ...truncSatZero, ...localSet(LHI),
  // splitmix32 finalizer
  ...localGet(ST), ...localSet(Z),
  ...xorShift(16),
  ...localGet(Z), ...v128Const([MIX1, MIX1, MIX1, MIX1].map((x) => x | 0)), ...i32x4Mul, ...localSet(Z),
  ...xorShift(13),
  ...localGet(Z), ...v128Const([MIX2, MIX2, MIX2, MIX2].map((x) => x | 0)), ...i32x4Mul, ...localSet(Z),
  ...xorShift(16),
  ...localGet(ST), ...v128Const([4 * GOLDEN, 4 * GOLDEN, 4 * GOLDEN, 4 * GOLDEN].map((x) => x | 0)), ...i32x4Add, ...localSet(ST),
  // level = floor + (draw < fraction * 2^32): floors of both halves side by side, minus the masks
  ...localGet(LLO), ...localGet(LHI), ...shuffle([0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23]),
  ...roundUpHalf(ALO, LLO, false), ...roundUpHalf(AHI, LHI, true),
  ...shuffle([0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27]),
  ...i32x4Sub, ...localSet(LVL),
  // the code: level | sign where v < 0 and level != 0
  ...localGet(LVL),
  ...localGet(V), ...v128Const([0, 0, 0, 0]), ...f32x4Lt,
  ...localGet(LVL), ...v128Const([0, 0, 0, 0]), ...i32x4Ne, ...and,
  ...v128Const([signBit, signBit, signBit, signBit]), ...and, ...or
]

/**
 * Two i32x4 of codes (a, then b, on the stack) to one: lane k holds the k-th pair of lanes of
 * [a, b], the second shifted left by `shift` bits: (a0 | a1 << s, a2 | a3 << s, b0 | b1 << s, b2 | b3 << s).
 */
const packPairs = (shift: number): number[] => [
  ...localSet(PB), ...localSet(PA),
  ...localGet(PA), ...localGet(PB), ...shuffle([0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27]),
  ...localGet(PA), ...localGet(PB), ...shuffle([4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31]),
  ...i32Const(shift), ...SIMD['i32x4.shl'], ...or
]

/**
 * The encoder at `bits` (8, 4 or 2): 8 / bits groups of four values an iteration, their codes
 * packed into four bytes as the scalar loop ORs them in (value i at bit i bits of the codes), so n
 * must be a multiple of 32 / bits.
 */
function encodeBody(bits: 2 | 4 | 8): number[] {
  const levels = (1 << (bits - 1)) - 1
  const signBit = 1 << (bits - 1)
  const groups = 8 / bits
  const packed = bits === 8
    ? groupCodes(0, signBit)
    : bits === 4
      ? [...groupCodes(0, signBit), ...groupCodes(1, signBit), ...packPairs(4)]
      : [
          ...groupCodes(0, signBit), ...groupCodes(1, signBit), ...packPairs(2), ...localSet(PC),
          ...groupCodes(2, signBit), ...groupCodes(3, signBit), ...packPairs(2), ...localSet(PD),
          ...localGet(PC), ...localGet(PD), ...packPairs(4)
        ]
  const code = [
    ...localGet(N), ...i32Const(2), 0x74, ...localSet(END), // end = n << 2
    ...localGet(SCALE), ...f64x2Splat, ...localSet(SCL),
    ...f64Const(levels), ...f64x2Splat, ...localSet(LIM),
    ...f64Const(4294967296), ...f64x2Splat, ...localSet(TWO32),
    // lane k draws with state + (k + 1) * golden; each group moves all four by 4 * golden
    ...localGet(STATE), ...i32x4Splat, ...v128Const([GOLDEN, 2 * GOLDEN, 3 * GOLDEN, 4 * GOLDEN].map((x) => x | 0)), ...i32x4Add, ...localSet(ST),
    0x02, 0x40, 0x03, 0x40, // block, loop
    ...localGet(OFF), ...localGet(END), 0x4f, 0x0d, 1, // if off >= end (unsigned) break
    ...localGet(CODES), ...localGet(OFF), ...i32Const(2 + Math.log2(groups)), 0x76, i32Add, // codes + off / (4 groups): four bytes an iteration
    ...packed,
    0x22, ...[LVL], // local.tee
    ...localGet(LVL), ...narrow16, 0x22, LVL, ...localGet(LVL), ...narrow8,
    ...store32Lane,
    ...localGet(OFF), ...i32Const(16 * groups), i32Add, ...localSet(OFF), // off += 16 bytes a group
    0x0c, 0, 0x0b, 0x0b, // br loop, end loop, end block
    ...localGet(ST), ...SIMD['i32x4.extract_lane'], 0, // lane 0: lane 0's state, (k + 1) golden ahead
    ...i32Const(GOLDEN | 0), 0x6b, // minus one golden step: the state after the last draw
    0x0b
  ]
  return functionBody([[2, I32], [15, V128]], code)
}

/**
 * One encode works through the vector a window at a time: load() a window (whole buckets),
 * encode() its buckets in order, copy codes() out, load the next. The memory holds one window
 * (5 bytes per value), not the vector.
 */
/** decode's locals after the five parameters (codes, values, n, step, unused) */
const D = { CODES: 0, OUT: 1, OFF: 5, END: 6, STEP: 7, C: 8, S: 9, FLAG: 10 } as const

/** signed level x step of lanes 0-1 (or 2-3) of D.S, in float64, rounded to float32 in lanes 0-1 */
const decodeHalf = (high: boolean): number[] => [
  ...localGet(D.S), ...(high ? [...localGet(D.S), ...shuffle(HIGH_HALF)] : []), ...convertLowS,
  ...localGet(D.STEP), ...f64x2Mul, ...SIMD['f32x4.demote_f64x2_zero']
]

/**
 * The decoder at `bits` (8, 4 or 2): four codes an iteration, widened to i32 lanes (8 bits: four
 * bytes; 4 and 2 bits: two bytes or one, splatted, each lane shifted left by a multiply so that one
 * right shift puts its code at the bottom), then the signed level x step of each.
 */
function decodeBody(bits: 2 | 4 | 8): number[] {
  const signBit = 1 << (bits - 1)
  // output bytes (16 per four values) -> code bytes: off >> 2 at 8 bits, >> 3 at 4, >> 4 at 2
  const codeShift = 2 + Math.log2(8 / bits)
  const codeAddress = [...localGet(D.CODES), ...localGet(D.OFF), ...i32Const(codeShift), 0x76, i32Add]
  const widened = bits === 8
    ? [...codeAddress, ...SIMD['v128.load32_zero'], 0, 0, ...SIMD['i16x8.extend_low_i8x16_u'], ...SIMD['i32x4.extend_low_i16x8_u']]
    : [
        ...codeAddress, ...(bits === 4 ? [0x2f, 0, 0] : [0x2d, 0, 0]), ...i32x4Splat, // i32.load16_u / i32.load8_u
        ...v128Const([0, 1, 2, 3].map((k) => 2 ** (16 - bits - k * bits))), ...i32x4Mul,
        ...i32Const(16 - bits), ...i32x4ShrU, ...v128Const([0, 1, 2, 3].map(() => (1 << bits) - 1)), ...and
      ]
  const code = [
    ...localGet(N), ...i32Const(2), 0x74, ...localSet(D.END), // end = n << 2 (bytes of output)
    ...localGet(SCALE), ...f64x2Splat, ...localSet(D.STEP),
    0x02, 0x40, 0x03, 0x40, // block, loop
    ...localGet(D.OFF), ...localGet(D.END), 0x4f, 0x0d, 1, // if off >= end (unsigned) break
    ...widened, ...localSet(D.C),
    ...localGet(D.FLAG), ...localGet(D.C), ...v128Const([signBit, signBit, signBit, signBit]), ...SIMD['i32x4.eq'], ...or, ...localSet(D.FLAG),
    // signed level = (level ^ m) - m, m = all ones where the sign bit is set
    ...localGet(D.C), ...i32Const(32 - bits), ...SIMD['i32x4.shl'], ...i32Const(31), ...SIMD['i32x4.shr_s'], ...localSet(D.S),
    ...localGet(D.C), ...v128Const([signBit - 1, signBit - 1, signBit - 1, signBit - 1]), ...and, ...localGet(D.S), ...xor, ...localGet(D.S), ...i32x4Sub, ...localSet(D.S),
    ...localGet(D.OUT), ...localGet(D.OFF), i32Add, // address: out + off
    ...decodeHalf(false), ...decodeHalf(true), ...shuffle([0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23]),
    ...SIMD['v128.store'], 2, 0,
    ...localGet(D.OFF), ...i32Const(16), i32Add, ...localSet(D.OFF),
    0x0c, 0, 0x0b, 0x0b,
    ...localGet(D.FLAG), ...SIMD['v128.any_true'],
    0x0b
  ]
  return functionBody([[2, I32], [4, V128]], code)
}

/** sumsq8's locals: off, end (i32), the two-lane accumulator */
function sumsq8Body(): number[] {
  const [OFF_, END_, ACC] = [5, 6, 7]
  const code = [
    ...localGet(N), ...i32Const(2), 0x74, ...localSet(END_),
    0x02, 0x40, 0x03, 0x40,
    ...localGet(OFF_), ...localGet(END_), 0x4f, 0x0d, 1,
    ...localGet(ACC),
    ...localGet(VALUES), ...localGet(OFF_), i32Add, ...SIMD['v128.load64_zero'], 2, 0, ...promoteLow, 0x22, ...[8], ...localGet(8), ...f64x2Mul,
    ...SIMD['f64x2.add'], ...localSet(ACC),
    ...localGet(OFF_), ...i32Const(8), i32Add, ...localSet(OFF_),
    0x0c, 0, 0x0b, 0x0b,
    ...i32Const(0), // f64.store address 0: even lanes' sum + odd lanes' sum
    ...localGet(ACC), ...SIMD['f64x2.extract_lane'], 0, ...localGet(ACC), ...SIMD['f64x2.extract_lane'], 1, 0xa0,
    0x39, 3, 0,
    ...i32Const(0),
    0x0b
  ]
  return functionBody([[2, I32], [2, V128]], code)
}

/** bytes before a window's values: sumsq8's result */
const SCRATCH = 16

export interface QsgdKernel {
  /** copies `values` (a window of the vector) into the kernel's memory, growing it when needed */
  load(values: Float32Array): void
  /**
   * The codes of the window's values [start, end) (indices in the window; end - start a multiple
   * of 4), as the scalar loop computes them from `scale` and `state`; returns the state after the
   * end - start draws.
   */
  encode(start: number, end: number, scale: number, state: number): number
  /** the window's codes as the payload packs them (a view: read it before the next load) */
  codes(): Uint8Array
  /** sum of squares of the window's values [start, end) (end - start even), as sumOfSquares computes it */
  sumOfSquares(start: number, end: number): number
  /**
   * copies the packed codes of a window of `count` values (ceil(count x bits / 8) bytes, the
   * first on a byte) into the kernel's memory, growing it when needed
   */
  loadCodes(codes: Uint8Array, count: number): void
  /**
   * The window's values [start, end) (start and end - start multiples of 4) from its codes: signed
   * level x `step`; true when one of the codes is the sign bit alone (a "-0", which the caller refuses)
   */
  decode(start: number, end: number, step: number): boolean
  /** the window's decoded values (a view: read it before the next load) */
  values(): Float32Array
}

const compiled = new Map<number, object>()

/**
 * The kernels with their own memory (a window's float32 values, then its codes; grown to the
 * largest window seen); throws without WebAssembly SIMD. `bits` (default 8): the encoder's code
 * width (4 and 2: encode() takes a multiple of 8 or 16 values, starting on a byte; codes() and
 * loadCodes() then hold the window's packed bytes, as decode() reads them).
 * Decoding mlp-large into a reused buffer (`bench/codec-throughput.ts --quick`, Zen 5, three runs):
 * 4 bits 1.2-2.1 -> 5.0-5.5 GB/s of float32 out (a code byte at a time in JS before), 2 bits
 * 0.7-3.4 -> 5.0-5.3.
 */
export function createQsgdKernel(bits: 2 | 4 | 8 = 8): QsgdKernel {
  const api = wasmApi()
  let module = compiled.get(bits)
  if (module === undefined) {
    module = new api.Module(assembleModule({ params: [I32, I32, I32, F64, I32], results: [I32] }, [['encode', encodeBody(bits)], ['decode', decodeBody(bits)], ['sumsq8', sumsq8Body()]]))
    compiled.set(bits, module)
  }
  const memory: WasmMemory = createWasmMemory(WASM_PAGE)
  const instance = new api.Instance(module, { env: { memory } })
  const encodeCodes = instance.exports.encode as (values: number, codes: number, n: number, scale: number, state: number) => number
  const decodeCodes = instance.exports.decode as (codes: number, out: number, n: number, step: number, unused: number) => number
  const sumsq8 = instance.exports.sumsq8 as (values: number, unused: number, n: number, unusedF: number, unusedI: number) => number
  let count = 0
  let sum = new Float64Array(memory.buffer, 0, 1)
  const ensure = (n: number): void => {
    const needed = SCRATCH + 5 * n
    if (memory.buffer.byteLength < needed) {
      memory.grow(Math.ceil((needed - memory.buffer.byteLength) / WASM_PAGE))
      sum = new Float64Array(memory.buffer, 0, 1) // growing detached the old buffer
    }
    count = n
  }
  return {
    load(values) {
      ensure(values.length)
      new Float32Array(memory.buffer, SCRATCH, values.length).set(values)
    },
    encode(start, end, scale, state) {
      return encodeCodes(SCRATCH + 4 * start, SCRATCH + 4 * count + (start * bits) / 8, end - start, scale, state)
    },
    codes: () => new Uint8Array(memory.buffer, SCRATCH + 4 * count, Math.ceil((count * bits) / 8)),
    sumOfSquares(start, end) {
      sumsq8(SCRATCH + 4 * start, 0, end - start, 0, 0)
      return sum[0]
    },
    loadCodes(codes, values) {
      ensure(values)
      new Uint8Array(memory.buffer, SCRATCH + 4 * count, codes.length).set(codes)
    },
    decode: (start, end, step) => decodeCodes(SCRATCH + 4 * count + (start * bits) / 8, SCRATCH + 4 * start, end - start, step, 0) !== 0,
    values: () => new Float32Array(memory.buffer, SCRATCH, count)
  }
}

/** createQsgdKernel(8) */
export function createQsgd8Kernel(): QsgdKernel {
  return createQsgdKernel(8)
}
