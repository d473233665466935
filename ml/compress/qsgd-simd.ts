/**
 * qsgd's 8-bit bucket loop (see qsgd-codec.ts) as a WebAssembly SIMD kernel, four values per
 * iteration, giving the same codes as the scalar loop bit for bit: the scaled magnitudes, their
 * floor and fraction and the Bernoulli threshold in float64 lanes (exact, as in JS), and the
 * splitmix32 draws in i32x4 lanes, each lane at its value's position in the scalar sequence.
 *
 * Kernel: encode8(values, codes: i32 byte offsets, n: i32 (a multiple of 4), scale: f64,
 * state: i32) -> i32 state after the n draws. Opcodes: WebAssembly core spec 2.0 with SIMD.
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

function encode8Body(): number[] {
  const code = [
    ...localGet(N), ...i32Const(2), 0x74, ...localSet(END), // end = n << 2
    ...localGet(SCALE), ...f64x2Splat, ...localSet(SCL),
    ...f64Const(127), ...f64x2Splat, ...localSet(LIM),
    ...f64Const(4294967296), ...f64x2Splat, ...localSet(TWO32),
    // lane k draws with state + (k + 1) * golden; each iteration moves all four by 4 * golden
    ...localGet(STATE), ...i32x4Splat, ...v128Const([GOLDEN, 2 * GOLDEN, 3 * GOLDEN, 4 * GOLDEN].map((x) => x | 0)), ...i32x4Add, ...localSet(ST),
    0x02, 0x40, 0x03, 0x40, // block, loop
    ...localGet(OFF), ...localGet(END), 0x4f, 0x0d, 1, // if off >= end (unsigned) break
    ...localGet(VALUES), ...localGet(OFF), i32Add, ...SIMD['v128.load'], 2, 0, ...localSet(V),
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
    // the code: level | 128 where v < 0 and level != 0
    ...localGet(CODES), ...localGet(OFF), ...i32Const(2), 0x76, i32Add, // address codes + off / 4
    ...localGet(LVL),
    ...localGet(V), ...v128Const([0, 0, 0, 0]), ...f32x4Lt,
    ...localGet(LVL), ...v128Const([0, 0, 0, 0]), ...i32x4Ne, ...and,
    ...v128Const([128, 128, 128, 128]), ...and, ...or,
    0x22, ...[LVL], // local.tee
    ...localGet(LVL), ...narrow16, 0x22, LVL, ...localGet(LVL), ...narrow8,
    ...store32Lane,
    ...localGet(OFF), ...i32Const(16), i32Add, ...localSet(OFF), // off += 16
    0x0c, 0, 0x0b, 0x0b, // br loop, end loop, end block
    ...localGet(ST), ...SIMD['i32x4.extract_lane'], 0, // lane 0: lane 0's state, (k + 1) golden ahead
    ...i32Const(GOLDEN | 0), 0x6b, // minus one golden step: the state after the last draw
    0x0b
  ]
  return functionBody([[2, I32], [11, V128]], code)
}

/**
 * One encode works through the vector a window at a time: load() a window (whole buckets),
 * encode() its buckets in order, copy codes() out, load the next. The memory holds one window
 * (5 bytes per value), not the vector.
 */
export interface Qsgd8Kernel {
  /** copies `values` (a window of the vector) into the kernel's memory, growing it when needed */
  load(values: Float32Array): void
  /**
   * The codes of the window's values [start, end) (indices in the window; end - start a multiple
   * of 4), as the scalar loop computes them from `scale` and `state`; returns the state after the
   * end - start draws.
   */
  encode(start: number, end: number, scale: number, state: number): number
  /** the window's codes, one byte per value (a view: read it before the next load) */
  codes(): Uint8Array
}

let compiled: object | undefined

/** The kernel with its own memory (grown to the largest window seen); throws without WebAssembly SIMD. */
export function createQsgd8Kernel(): Qsgd8Kernel {
  const api = wasmApi()
  compiled ??= new api.Module(assembleModule({ params: [I32, I32, I32, F64, I32], results: [I32] }, [['encode8', encode8Body()]]))
  let memory: WasmMemory = createWasmMemory(WASM_PAGE)
  const instance = new api.Instance(compiled, { env: { memory } })
  const encode8 = instance.exports.encode8 as (values: number, codes: number, n: number, scale: number, state: number) => number
  let count = 0
  const ensure = (n: number): void => {
    const needed = 5 * n
    if (memory.buffer.byteLength < needed) memory.grow(Math.ceil((needed - memory.buffer.byteLength) / WASM_PAGE))
    count = n
  }
  return {
    load(values) {
      ensure(values.length)
      new Float32Array(memory.buffer, 0, values.length).set(values)
    },
    encode(start, end, scale, state) {
      return encode8(4 * start, 4 * count + start, end - start, scale, state)
    },
    codes: () => new Uint8Array(memory.buffer, 4 * count, count)
  }
}
