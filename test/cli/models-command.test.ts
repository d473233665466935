/** `p2pmld models` as a real child process: the zoo with parameter counts, as a table and as JSON. */
import { execFile } from 'node:child_process'
import { resolve } from 'node:path'
import { promisify } from 'node:util'
import { beforeAll, describe, expect, it } from 'vitest'
import { CLI_MAIN, ensureBuilt } from '../e2e/support/build.js'

const ROOT = resolve(import.meta.dirname, '../..')
// the CLI users get (dist/, bundled): built once by `npm test`'s pretest, or here when stale;
// from the sources through tsx each spawn cost ~0.8 s more
beforeAll(async () => { await ensureBuilt() }, 120_000)
const run = async (args: string[]): Promise<{ stdout: string, stderr: string }> => await promisify(execFile)(process.execPath, [CLI_MAIN, ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? '' } })

describe('p2pmld models', () => {
  it('lists the paper\'s models with torchvision\'s parameter counts per dataset shape', async () => {
    const { stdout, stderr } = await run(['models'])
    expect(stderr).toBe('')
    expect(stdout).toMatch(/squeezenet1_1\s+3x32x32\s+727,626/)
    expect(stdout).toMatch(/mobilenet_v3_small\s+3x32x32\s+1,528,106\s+12,112/)
    expect(stdout).toMatch(/vgg11\s+3x32x32\s+128,807,306/)
    expect(stdout).toMatch(/lenet5\s+1x28x28\s+61,706/)
    const json = JSON.parse((await run(['models', '--json'])).stdout) as Array<{ name: string, inputs: Array<{ dataset: string, parameters: number }> }>
    expect(json.find((m) => m.name === 'mobilenet_v3_small')?.inputs.map((i) => i.dataset)).toEqual(['mnist', 'cifar-10'])
    expect(json.find((m) => m.name === 'lenet5')?.inputs.map((i) => i.dataset)).toEqual(['mnist'])
  }, 60_000)
})
