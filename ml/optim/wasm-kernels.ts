/**
 * The optimizer's element loops as a tiny WebAssembly SIMD module, assembled here from opcodes
 * (no toolchain, no binary blob). Each kernel works on two float32 values at a time and does
 * its arithmetic in float64 lanes (f64x2), rounding to float32 only where the plain JS loops
 * store a value: the results are bit-identical to those loops, about 2-4x faster.
 *
 * The kernels read and write four scratch arrays in the module's memory (P: parameters,
 * G: gradient, S1/S2: optimizer state), CHUNK values each; the caller copies a chunk in, runs
 * the kernel and copies it back (see optimizer.ts). Opcodes: WebAssembly core spec 2.0, SIMD
 * ("fixed-width SIMD" proposal, merged into 2.0).
 */

/** values per scratch array; 4 arrays of 16 KiB stay in L1/L2 between copy-in and copy-out */
export const CHUNK = 4096

const BYTES = CHUNK * 4
/** byte offsets of the scratch arrays in the module's memory */
const P = 0
const G = BYTES
const S1 = 2 * BYTES
const S2 = 3 * BYTES

// --- encoding helpers (binary format, spec section 5) ---
function uleb(n: number): number[] {
  const out: number[] = []
  do {
    let byte = n & 0x7f
    n >>>= 7
    if (n !== 0) byte |= 0x80
    out.push(byte)
  } while (n !== 0)
  return out
}
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()]
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body]
const name = (s: string): number[] => [...uleb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))]

const I32 = 0x7f
const F64 = 0x7c
const V128 = 0x7b
const simd = (op: number): number[] => [0xfd, ...uleb(op)]
const localGet = (i: number): number[] => [0x20, ...uleb(i)]
const localSet = (i: number): number[] => [0x21, ...uleb(i)]
/** v128.load64_zero at (off + base): two float32 values into the low half */
const load2 = (off: number, base: number): number[] => [...localGet(off), ...simd(93), 0, ...uleb(base)]
/** v128.store64_lane 0 at (off + base) of the value on the stack, address pushed first */
const store2 = (base: number): number[] => [...simd(91), 0, ...uleb(base), 0]
const promote = simd(95) // f64x2.promote_low_f32x4
const demote = simd(94) // f32x4.demote_f64x2_zero
const splat = simd(20) // f64x2.splat
const add = simd(240)
const sub = simd(241)
const mul = simd(242)
const div = simd(243)
const sqrt = simd(239)

/** Kernel signature: (n: i32 values, even, then up to 8 f64 scalars) -> () */
const SCALARS = 8
/** locals after the parameters: off, end (i32), then v128 splats and temporaries */
const OFF = 1 + SCALARS
const END = OFF + 1
const splatLocal = (k: number): number => END + 1 + k // v128 splat of scalar k (k = 0..7)
const T0 = END + 1 + SCALARS
const T1 = T0 + 1
const T2 = T0 + 2

/** Wraps a per-pair body in: end = n*4; splat the scalars; for (off = 0; off < end; off += 8) body */
function kernelBody(usedScalars: number, body: number[]): number[] {
  const locals = [[...uleb(2), I32], [...uleb(SCALARS + 3), V128]]
  const code: number[] = [
    ...localGet(0), 0x41, 2, 0x74, ...localSet(END) // end = n << 2
  ]
  for (let k = 0; k < usedScalars; k++) code.push(...localGet(1 + k), ...splat, ...localSet(splatLocal(k)))
  code.push(
    0x02, 0x40, 0x03, 0x40, // block, loop
    ...localGet(OFF), ...localGet(END), 0x4f, 0x0d, 1, // if off >= end (unsigned) break
    ...body,
    ...localGet(OFF), 0x41, 8, 0x6a, ...localSet(OFF), // off += 8
    0x0c, 0, 0x0b, 0x0b, // br loop, end loop, end block
    0x0b // end function
  )
  const full = [...vec(locals), ...code]
  return [...uleb(full.length), ...full]
}

/** g = grad (+ wd * param) into T0; scalar 0 is wd */
function gradientTerm(weightDecay: boolean): number[] {
  const g = [...load2(OFF, G), ...promote]
  if (weightDecay) g.push(...localGet(splatLocal(0)), ...load2(OFF, P), ...promote, ...mul, ...add)
  return [...g, ...localSet(T0)]
}

/** params -= lr * g; scalars: wd, lr */
function sgdPlainBody(weightDecay: boolean): number[] {
  return [
    ...gradientTerm(weightDecay),
    ...localGet(OFF),
    ...load2(OFF, P), ...promote, ...localGet(splatLocal(1)), ...localGet(T0), ...mul, ...sub, ...demote,
    ...store2(P)
  ]
}

/** b = mu * b + g; params -= lr * (nesterov ? g + momentum * b : b); scalars: wd, lr, mu, momentum */
function sgdMomentumBody(weightDecay: boolean, nesterov: boolean): number[] {
  const update = nesterov ? [...localGet(T0), ...localGet(splatLocal(3)), ...localGet(T1), ...mul, ...add] : localGet(T1)
  return [
    ...gradientTerm(weightDecay),
    ...localGet(splatLocal(2)), ...load2(OFF, S1), ...promote, ...mul, ...localGet(T0), ...add, ...localSet(T1),
    ...localGet(OFF), ...localGet(T1), ...demote, ...store2(S1),
    ...localGet(OFF),
    ...load2(OFF, P), ...promote, ...localGet(splatLocal(1)), ...update, ...mul, ...sub, ...demote,
    ...store2(P)
  ]
}

/**
 * m = f32(beta1 m + (1-beta1) g); v = f32(beta2 v + (1-beta2) g g);
 * params -= stepSize m / (sqrt(v) / sqrtBc2 + eps).
 * Scalars: wd, beta1, 1-beta1, beta2, 1-beta2, eps, stepSize, sqrtBc2.
 */
function adamBody(weightDecay: boolean): number[] {
  const s = splatLocal
  return [
    ...gradientTerm(weightDecay),
    // m, rounded to float32 as stored, kept (widened) in T1
    ...localGet(OFF),
    ...localGet(s(1)), ...load2(OFF, S1), ...promote, ...mul, ...localGet(s(2)), ...localGet(T0), ...mul, ...add, ...demote,
    ...localSet(T2), ...localGet(T2), ...store2(S1), ...localGet(T2), ...promote, ...localSet(T1),
    // v likewise, into T2
    ...localGet(OFF),
    ...localGet(s(3)), ...load2(OFF, S2), ...promote, ...mul, ...localGet(s(4)), ...localGet(T0), ...mul, ...localGet(T0), ...mul, ...add, ...demote,
    ...localSet(T2), ...localGet(T2), ...store2(S2), ...localGet(T2), ...promote, ...localSet(T2),
    ...localGet(OFF),
    ...load2(OFF, P), ...promote,
    ...localGet(s(6)), ...localGet(T1), ...mul,
    ...localGet(T2), ...sqrt, ...localGet(s(7)), ...div, ...localGet(s(5)), ...add,
    ...div, ...sub, ...demote,
    ...store2(P)
  ]
}

type Kernel = (n: number, ...scalars: number[]) => void

export interface OptimizerKernels {
  /** views of the scratch arrays, CHUNK values each */
  readonly p: Float32Array
  readonly g: Float32Array
  readonly s1: Float32Array
  readonly s2: Float32Array
  /** kernels by variant name, e.g. 'sgd', 'sgd-wd', 'momentum-nesterov-wd', 'adam'; n must be even */
  readonly kernel: Readonly<Record<string, Kernel>>
}

const VARIANTS: ReadonlyArray<readonly [string, number, number[]]> = [
  ['sgd', 2, sgdPlainBody(false)],
  ['sgd-wd', 2, sgdPlainBody(true)],
  ['momentum', 4, sgdMomentumBody(false, false)],
  ['momentum-wd', 4, sgdMomentumBody(true, false)],
  ['momentum-nesterov', 4, sgdMomentumBody(false, true)],
  ['momentum-nesterov-wd', 4, sgdMomentumBody(true, true)],
  ['adam', 8, adamBody(false)],
  ['adam-wd', 8, adamBody(true)]
]

function assemble(): Uint8Array {
  const type = [0x60, ...vec([[I32], ...Array.from({ length: SCALARS }, () => [F64])]), ...vec([])]
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([type])),
    ...section(3, vec(VARIANTS.map(() => [0]))),
    ...section(5, vec([[0x00, ...uleb(Math.ceil((4 * BYTES) / 65536))]])),
    ...section(7, vec([
      [...name('memory'), 0x02, 0],
      ...VARIANTS.map(([variant], i) => [...name(variant), 0x00, ...uleb(i)])
    ])),
    ...section(10, vec(VARIANTS.map(([, used, body]) => kernelBody(used, body))))
  ]
  return new Uint8Array(bytes)
}

/** The part of the WebAssembly JS API used here (the project's type libraries do not declare it). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object
  Instance: new (module: object, imports: object) => { readonly exports: Record<string, unknown> }
}
const wasmApi = (): WasmApi => {
  const api = (globalThis as { WebAssembly?: WasmApi }).WebAssembly
  if (api === undefined) throw new Error('this runtime has no WebAssembly')
  return api
}

let compiled: object | undefined

/**
 * A fresh instance (its own scratch memory) of the kernels. Throws if this runtime has no
 * WebAssembly SIMD (Node >= 16.4 has it); callers fall back to the JS loops.
 */
export function createOptimizerKernels(): OptimizerKernels {
  const api = wasmApi()
  compiled ??= new api.Module(assemble())
  const instance = new api.Instance(compiled, {})
  const memory = instance.exports.memory as { readonly buffer: ArrayBuffer }
  const view = (base: number): Float32Array => new Float32Array(memory.buffer, base, CHUNK)
  const kernel: Record<string, Kernel> = {}
  for (const [variant] of VARIANTS) kernel[variant] = instance.exports[variant] as Kernel
  return { p: view(P), g: view(G), s1: view(S1), s2: view(S2), kernel }
}
