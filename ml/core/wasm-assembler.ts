/**
 * The few pieces of the WebAssembly binary format (core spec 2.0, section 5) that the project's
 * hand-assembled SIMD kernels need (optimizer loops, qsgd encoding), and a typed handle on the
 * runtime's WebAssembly API (the project's type libraries do not declare it). No toolchain, no
 * binary blob: each kernel module is assembled from opcodes where it is defined.
 */

/** unsigned LEB128 */
export function uleb(n: number): number[] {
  const out: number[] = []
  do {
    let byte = n & 0x7f
    n >>>= 7
    if (n !== 0) byte |= 0x80
    out.push(byte)
  } while (n !== 0)
  return out
}

/** signed LEB128 of a 32-bit integer (i32.const immediates) */
export function sleb(n: number): number[] {
  const out: number[] = []
  let value = n | 0
  for (;;) {
    const byte = value & 0x7f
    value >>= 7
    if ((value === 0 && (byte & 0x40) === 0) || (value === -1 && (byte & 0x40) !== 0)) {
      out.push(byte)
      return out
    }
    out.push(byte | 0x80)
  }
}

export const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()]
export const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body]
export const name = (s: string): number[] => [...uleb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))]

export const I32 = 0x7f
export const F32 = 0x7d
export const F64 = 0x7c
export const V128 = 0x7b
/** a SIMD instruction (prefix 0xfd) */
export const simd = (op: number): number[] => [0xfd, ...uleb(op)]
/**
 * The SIMD instructions the kernels use, by their spec names (core spec 2.0, section 5.4.8);
 * lanes, memarg and shuffle immediates follow where the instruction takes them.
 */
export const SIMD = {
  'v128.load': simd(0),
  'v128.store': simd(11),
  'v128.const': simd(12),
  'i8x16.shuffle': simd(13),
  'i32x4.splat': simd(17),
  'f32x4.splat': simd(19),
  'f64x2.splat': simd(20),
  'i32x4.extract_lane': simd(27),
  'i32x4.eq': simd(55),
  'i32x4.ne': simd(56),
  'f32x4.lt': simd(67),
  'f64x2.lt': simd(73),
  'v128.and': simd(78),
  'v128.andnot': simd(79),
  'v128.any_true': simd(83),
  'v128.load32_zero': simd(92),
  'v128.load64_zero': simd(93),
  'f32x4.demote_f64x2_zero': simd(94),
  'f64x2.extract_lane': simd(33),
  'f64x2.add': simd(240),
  'i16x8.extend_low_i8x16_u': simd(137),
  'i32x4.extend_low_i16x8_u': simd(169),
  'i32x4.shl': simd(171),
  'i32x4.shr_s': simd(172),
  'v128.or': simd(80),
  'v128.xor': simd(81),
  'v128.store32_lane': simd(90),
  'f64x2.promote_low_f32x4': simd(95),
  'i8x16.narrow_i16x8_u': simd(102),
  'i16x8.narrow_i32x4_u': simd(134),
  'i32x4.shr_u': simd(173),
  'i32x4.add': simd(174),
  'i32x4.sub': simd(177),
  'i32x4.mul': simd(181),
  'f32x4.abs': simd(224),
  'f32x4.sqrt': simd(227),
  'f32x4.add': simd(228),
  'f32x4.sub': simd(229),
  'f32x4.mul': simd(230),
  'f32x4.div': simd(231),
  'f64x2.sub': simd(241),
  'f64x2.mul': simd(242),
  'f64x2.min': simd(244),
  'i32x4.trunc_sat_f64x2_s_zero': simd(252),
  'f64x2.convert_low_i32x4_s': simd(254),
  'f64x2.convert_low_i32x4_u': simd(255)
} as const

export const localGet = (i: number): number[] => [0x20, ...uleb(i)]
export const localSet = (i: number): number[] => [0x21, ...uleb(i)]
export const i32Add = 0x6a

/** a function body: its locals ([count, type] groups) and code, which must end with `end` (0x0b) */
export function functionBody(locals: ReadonlyArray<readonly [number, number]>, code: number[]): number[] {
  const full = [...vec(locals.map(([count, type]) => [...uleb(count), type])), ...code]
  return [...uleb(full.length), ...full]
}

/** A module importing env.memory, with one function type and the given exported functions. */
export function assembleModule(type: { params: number[], results: number[] }, functions: ReadonlyArray<readonly [string, number[]]>): Uint8Array {
  const signature = [0x60, ...vec(type.params.map((t) => [t])), ...vec(type.results.map((t) => [t]))]
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([signature])),
    ...section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x00, 0]])), // import memory, min 0 pages
    ...section(3, vec(functions.map(() => [0]))),
    ...section(7, vec(functions.map(([fn], i) => [...name(fn), 0x00, ...uleb(i)]))),
    ...section(10, vec(functions.map(([, body]) => body)))
  ])
}

/** The part of the WebAssembly JS API the kernels use. */
export interface WasmMemory {
  readonly buffer: ArrayBuffer
  grow(pages: number): number
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object
  Instance: new (module: object, imports: object) => { readonly exports: Record<string, unknown> }
  Memory: new (descriptor: { initial: number }) => WasmMemory
}

/** the runtime's WebAssembly API; throws where there is none */
export function wasmApi(): WasmApi {
  const api = (globalThis as { WebAssembly?: WasmApi }).WebAssembly
  if (api === undefined) throw new Error('this runtime has no WebAssembly')
  return api
}

/** WebAssembly memory pages are 64 KiB */
export const WASM_PAGE = 65536

/** A WebAssembly memory of at least `bytes` bytes (zero-filled); throws where there is no WebAssembly. */
export function createWasmMemory(bytes: number): WasmMemory {
  return new (wasmApi().Memory)({ initial: Math.max(1, Math.ceil(bytes / WASM_PAGE)) })
}
