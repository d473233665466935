/**
 * The optimizer's element loops as a tiny WebAssembly SIMD module, assembled here from opcodes
 * (no toolchain, no binary blob). Each kernel works on four float32 values at a time (f32x4) in
 * float32 arithmetic, each operation rounded to float32 as PyTorch's CPU kernels round it; the
 * plain JS loops in optimizer.ts round every operation with Math.fround and give the same bits.
 * One departure from PyTorch: state values (SGD's momentum buffer, Adam's m and v) below
 * float32's smallest normal number are stored as 0 (flushState).
 *
 * The kernels read and write arrays at byte offsets in a memory the caller supplies (imported as
 * env.memory), so an optimizer keeps its state, and the parameters it is given to host, inside
 * that memory and updates them in place; arrays outside it go through a small scratch area a
 * chunk at a time (see optimizer.ts). Opcodes: WebAssembly core spec 2.0, SIMD ("fixed-width
 * SIMD" proposal, merged into 2.0).
 */

/** values per scratch chunk: 2 arrays of 16 KiB stay in L1 between copy-in and copy-out */
export const CHUNK = 65536

import { assembleModule, createWasmMemory, F32, functionBody, I32, i32Add, localGet, localSet, SIMD, sleb, uleb, V128, wasmApi, type WasmMemory } from '../core/wasm-assembler.js'

export type { WasmMemory }
const { 'f32x4.splat': splat, 'f32x4.sqrt': sqrt, 'f32x4.add': add, 'f32x4.sub': sub, 'f32x4.mul': mul, 'f32x4.div': div } = SIMD

/** Kernel signature: (p, g, s1, s2: i32 byte offsets, n: i32 values, a multiple of 4, then 8 f32 scalars) -> () */
const POINTERS = 4
const N = POINTERS
const SCALARS = 8
/** locals after the parameters: end, mainEnd (i32), then v128 splats and temporaries */
const END = POINTERS + 1 + SCALARS
const MAIN_END = END + 1
const splatLocal = (k: number): number => MAIN_END + 1 + k // v128 splat of scalar k (k = 0..7)
const T0 = MAIN_END + 1 + SCALARS
const T1 = T0 + 1
const T2 = T0 + 2
/** FLT_MIN in every lane (the kernels' setup) */
const T3 = T0 + 3
/** pointer argument indices */
const P = 0
const G = 1
const S1 = 2
const S2 = 3

/** v128.load of four float32 at pointer + at (bytes; the pointers advance as the loop runs) */
const load4 = (pointer: number, at: number): number[] => [...localGet(pointer), ...SIMD['v128.load'], 2, ...uleb(at)]
/** the address operand of a store (push before the value); the store is store4(at) */
const address = (pointer: number): number[] => localGet(pointer)
const store4 = (at: number): number[] => [...SIMD['v128.store'], 2, ...uleb(at)]

/** A kernel's work on four values (or a block of them) at byte offset `at` from the pointers. */
type Body = (at: number) => number[]

/** copies of an update's body per iteration of its main loop (see kernelBody) */
const UNROLL = 4

/**
 * Wraps a body in: end = p + n*4; splat the scalars; `setup`; a loop running `unroll` copies of
 * the body per iteration (at byte offsets 0, unit, 2 unit, ...), then a loop running one copy for
 * the values left; each iteration advances all four pointers past what it did, so an access is one
 * load or store with a constant offset (no address arithmetic); then `tail`. `unit`: bytes one
 * copy of the body covers (16: four values, the updates' f32x4), a power of two; n * 4 must be a
 * multiple of it. `advanced`: the pointers the loops move (p always: the loops end by it).
 * Unrolled four times with the pointers advanced, against one copy addressed by p + off
 * (bench/optimizer-step.ts, mlp-large, 2-core Zen 4, separate processes alternated, ns a
 * parameter): Nesterov + weight decay 0.52-0.69 -> 0.44, Adam 1.28-1.30 -> 1.08-1.10; SGD with
 * momentum 0.36-0.48 either way (memory-bound: 20 bytes a parameter on one core).
 */
function kernelBody(usedScalars: number, body: Body, { setup = [], tail = [], unit = 16, unroll = UNROLL, advanced = [P, G, S1, S2] }: { setup?: number[], tail?: number[], unit?: number, unroll?: number, advanced?: readonly number[] } = {}): number[] {
  const stride = unit * unroll
  const advance = (bytes: number): number[] => advanced.flatMap((pointer) => [...localGet(pointer), 0x41, ...sleb(bytes), i32Add, ...localSet(pointer)])
  const loop = (until: number, copies: number): number[] => [
    0x02, 0x40, 0x03, 0x40, // block, loop
    ...localGet(P), ...localGet(until), 0x4f, 0x0d, 1, // if p >= until (unsigned) break
    ...Array.from({ length: copies }, (_, k) => body(k * unit)).flat(),
    ...advance(copies * unit),
    0x0c, 0, 0x0b, 0x0b // br loop, end loop, end block
  ]
  const code: number[] = [
    ...localGet(N), 0x41, 2, 0x74, ...localSet(END), // end = n << 2
    ...localGet(END), 0x41, ...sleb(-stride), 0x71, ...localGet(P), i32Add, ...localSet(MAIN_END), // mainEnd = p + (end & -stride)
    ...localGet(END), ...localGet(P), i32Add, ...localSet(END) // end = p + (n << 2)
  ]
  for (let k = 0; k < usedScalars; k++) code.push(...localGet(N + 1 + k), ...splat, ...localSet(splatLocal(k)))
  code.push(...setup, ...loop(MAIN_END, unroll))
  if (unroll > 1) code.push(...loop(END, 1))
  code.push(...tail, 0x0b) // end function
  return functionBody([[2, I32], [SCALARS + 4, V128]], code)
}

/** float32's smallest normal number, 2^-126 (bit pattern 0x00800000) */
export const FLT_MIN = 1.1754943508222875e-38
const FLT_MIN_SETUP = [0x41, ...sleb(0x00800000), ...SIMD['i32x4.splat'], ...localSet(T3)]

/**
 * The state value in `local` with every lane whose magnitude is below FLT_MIN (a subnormal, or
 * a zero) set to +0. A parameter whose gradient stays 0 (a dead ReLU's weights) has its momentum
 * decay geometrically into the subnormals, where float32 rounding keeps it for ever (0.9 times
 * the smallest subnormal rounds back to it), and x86 runs arithmetic on subnormals through
 * microcode: with 18 % of mlp's momentum buffer stuck there after ~800 steps, every later update
 * took 0.37 against 0.06 ms. Flushed, the parameter moves by lr times 0 instead of by a product
 * that is itself below float32's resolution of any normal parameter; NaN compares false and stays.
 * Cost (bench/optimizer-step.ts, mlp-large, 2-core Xeon): SGD momentum 0.42-0.43 ns a parameter
 * either way (memory-bound); Nesterov + weight decay 0.41-0.42 -> 0.55-0.57, Adam 0.72-0.74 ->
 * 0.98-1.00 (PyTorch's opt.step(): 1.4-2.1 and 1.4-2.4).
 */
const flushState = (local: number): number[] => [
  ...localGet(local), ...localGet(local), ...SIMD['f32x4.abs'], ...localGet(T3), ...SIMD['f32x4.lt'], ...SIMD['v128.andnot'], ...localSet(local)
]

/** g = grad (+ wd * param) into T0; scalar 0 is wd */
function gradientTerm(weightDecay: boolean, at: number): number[] {
  const g = load4(G, at)
  if (weightDecay) g.push(...localGet(splatLocal(0)), ...load4(P, at), ...mul, ...add)
  return [...g, ...localSet(T0)]
}

/** params -= lr * g; scalars: wd, lr */
function sgdPlainBody(weightDecay: boolean): Body {
  return (at) => [
    ...gradientTerm(weightDecay, at),
    ...address(P),
    ...load4(P, at), ...localGet(splatLocal(1)), ...localGet(T0), ...mul, ...sub,
    ...store4(at)
  ]
}

/** b = flushState(mu * b + g); params -= lr * (nesterov ? g + momentum * b : b); scalars: wd, lr, mu, momentum */
function sgdMomentumBody(weightDecay: boolean, nesterov: boolean): Body {
  const update = nesterov ? [...localGet(T0), ...localGet(splatLocal(3)), ...localGet(T1), ...mul, ...add] : localGet(T1)
  return (at) => [
    ...gradientTerm(weightDecay, at),
    ...localGet(splatLocal(2)), ...load4(S1, at), ...mul, ...localGet(T0), ...add, ...localSet(T1), ...flushState(T1),
    ...address(S1), ...localGet(T1), ...store4(at),
    ...address(P),
    ...load4(P, at), ...localGet(splatLocal(1)), ...update, ...mul, ...sub,
    ...store4(at)
  ]
}

/**
 * m = flushState(beta1 m + (1-beta1) g); v = flushState(beta2 v + ((1-beta2) g) g);
 * params -= stepSize (m / (sqrt(v) / sqrtBc2 + eps)).
 * Scalars: wd, beta1, 1-beta1, beta2, 1-beta2, eps, stepSize, sqrtBc2.
 */
function adamBody(weightDecay: boolean): Body {
  const s = splatLocal
  return (at) => [
    ...gradientTerm(weightDecay, at),
    ...localGet(s(1)), ...load4(S1, at), ...mul, ...localGet(s(2)), ...localGet(T0), ...mul, ...add, ...localSet(T1), ...flushState(T1),
    ...address(S1), ...localGet(T1), ...store4(at),
    ...localGet(s(3)), ...load4(S2, at), ...mul, ...localGet(s(4)), ...localGet(T0), ...mul, ...localGet(T0), ...mul, ...add, ...localSet(T2), ...flushState(T2),
    ...address(S2), ...localGet(T2), ...store4(at),
    ...address(P),
    ...load4(P, at),
    ...localGet(s(6)),
    ...localGet(T1), ...localGet(T2), ...sqrt, ...localGet(s(7)), ...div, ...localGet(s(5)), ...add, ...div,
    ...mul, ...sub,
    ...store4(at)
  ]
}

/** float32's exponent bits: all set in an infinity or a NaN, and only there */
const EXPONENT_BITS = 0x7f800000

/** values the finiteness scan takes per iteration (its n must be a multiple) */
export const FINITE_BLOCK = 16

/**
 * Whether the n values at g are all finite: T0 |= (v & EXPONENT_BITS) == EXPONENT_BITS per lane,
 * 16 values an iteration (ORs of one cycle each, where a float sum waits on its adds), stored as
 * four i32 at s1: all zero when every value is finite. T1 holds the splat mask.
 */
const infiniteLanes = (at: number): number[] => [
  ...load4(G, at), ...localGet(T1), ...SIMD['v128.and'], ...localGet(T1), ...SIMD['i32x4.eq']
]
const finiteBody: Body = (at) => [
  ...infiniteLanes(at), ...infiniteLanes(at + 16), ...SIMD['v128.or'],
  ...infiniteLanes(at + 32), ...infiniteLanes(at + 48), ...SIMD['v128.or'], ...SIMD['v128.or'],
  ...localGet(T0), ...SIMD['v128.or'], ...localSet(T0)
]
const finiteSetup = [0x41, ...sleb(EXPONENT_BITS), ...SIMD['i32x4.splat'], ...localSet(T1)]
const finiteTail = [...localGet(S1), ...localGet(T0), ...store4(0)]

/** (p, g, s1, s2 byte offsets, n values (multiple of 4), up to 8 scalars rounded to float32) */
export type Kernel = (p: number, g: number, s1: number, s2: number, n: number, ...scalars: number[]) => void

/** Kernels by variant name, e.g. 'sgd', 'sgd-wd', 'momentum-nesterov-wd', 'adam'. */
export type OptimizerKernels = Readonly<Record<string, Kernel>>

const VARIANTS: ReadonlyArray<readonly [string, number, Body]> = [
  ['sgd', 2, sgdPlainBody(false)],
  ['sgd-wd', 2, sgdPlainBody(true)],
  ['momentum', 4, sgdMomentumBody(false, false)],
  ['momentum-wd', 4, sgdMomentumBody(true, false)],
  ['momentum-nesterov', 4, sgdMomentumBody(false, true)],
  ['momentum-nesterov-wd', 4, sgdMomentumBody(true, true)],
  ['adam', 8, adamBody(false)],
  ['adam-wd', 8, adamBody(true)]
]

/** the finiteness scan's name among the kernels (not an optimizer variant) */
export const FINITE_KERNEL = 'finite'

function assemble(): Uint8Array {
  const params = [...Array.from({ length: POINTERS + 1 }, () => I32), ...Array.from({ length: SCALARS }, () => F32)]
  const finite = kernelBody(0, finiteBody, { setup: finiteSetup, tail: finiteTail, unit: 4 * FINITE_BLOCK, unroll: 1, advanced: [P, G] })
  return assembleModule({ params, results: [] }, [...VARIANTS.map(([variant, used, body]) => [variant, kernelBody(used, body, { setup: FLT_MIN_SETUP })] as const), [FINITE_KERNEL, finite] as const])
}

/** A WebAssembly memory of at least `bytes` bytes (zero-filled); throws where there is no WebAssembly. */
export const createKernelMemory = createWasmMemory

let compiled: object | undefined

/**
 * The kernels, working on `memory`. Throws if this runtime has no WebAssembly SIMD (Node >= 16.4
 * has it); callers fall back to the JS loops.
 */
export function createOptimizerKernels(memory: WasmMemory): OptimizerKernels {
  const api = wasmApi()
  compiled ??= new api.Module(assemble())
  const instance = new api.Instance(compiled, { env: { memory } })
  const kernel: Record<string, Kernel> = {}
  for (const [variant] of VARIANTS) kernel[variant] = instance.exports[variant] as Kernel
  kernel[FINITE_KERNEL] = instance.exports[FINITE_KERNEL] as Kernel
  return kernel
}
