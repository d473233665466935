/**
 * The CLI loads a command's heavy half (ONNX Runtime with the model zoo's training graphs, libp2p,
 * the AWS SDK) only when that command runs it: `p2pmld --help`, `status` or `stop` load zod,
 * commander and the config, ~220 modules in ~0.4 s. (One `report` import pulled in libp2p and
 * `estimate`'s and `export`'s ONNX Runtime: 880 modules, ~0.95 s for every command.) A Node
 * module hook started before the CLI records each module the process loads.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ensureBuilt } from '../e2e/support/build.js'

let cli = ''
const dir = mkdtempSync(join(tmpdir(), 'p2pmld-startup-'))
const hooks = join(dir, 'hooks.mjs')
const register = join(dir, 'register.mjs')
beforeAll(async () => {
  cli = await ensureBuilt()
  // the hook runs on Node's loader thread: it appends each URL to the file its process names
  writeFileSync(hooks, [
    "import { appendFileSync } from 'node:fs'",
    'export async function load(url, context, next) { appendFileSync(process.env.P2PMLD_TEST_LOADED, url + "\\n"); return await next(url, context) }'
  ].join('\n'))
  writeFileSync(register, `import { register } from 'node:module'\nregister(${JSON.stringify(pathToFileURL(hooks).href)})\n`)
}, 180_000)
afterAll(() => { rmSync(dir, { recursive: true, force: true }) })

/** the packages (node_modules names) the CLI loaded for `args` */
function packagesLoaded(args: readonly string[]): Set<string> {
  const list = join(dir, `loaded-${args.join('-').replace(/[^\w-]/g, '_')}.txt`)
  writeFileSync(list, '')
  spawnSync(process.execPath, ['--import', pathToFileURL(register).href, cli, ...args], {
    encoding: 'utf8',
    env: { ...process.env, P2PMLD_TEST_LOADED: list, P2PMLD_SOCKET: join(dir, 'no-daemon.sock') },
    timeout: 60_000
  })
  const urls = readFileSync(list, 'utf8').split('\n').filter((l) => l !== '')
  return new Set(urls.flatMap((u) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(u)?.[1] ?? []))
}

const HEAVY = ['onnxruntime-node', 'libp2p', '@libp2p/tcp', '@chainsafe/libp2p-noise', '@aws-sdk/client-lambda', 'amqplib']

describe('p2pmld start-up', () => {
  it('the help, status and stop commands load no ONNX Runtime, libp2p, AWS SDK or broker client', () => {
    for (const args of [['--help'], ['status'], ['stop'], ['export', '--help'], ['estimate', '--help'], ['train', '--help'], ['report', '--help'], ['start', '--help']]) {
      const loaded = packagesLoaded(args)
      // the hook saw the CLI load: commander parsed the arguments
      expect(loaded.has('commander'), args.join(' ')).toBe(true)
      expect(HEAVY.filter((p) => loaded.has(p)), args.join(' ')).toEqual([])
    }
  }, 120_000)

  it('a command that needs ONNX Runtime still loads it when it runs', () => {
    // the checkpoint does not exist: the export fails after loading the exporter
    const loaded = packagesLoaded(['export', '--checkpoint', join(dir, 'missing'), '--out', join(dir, 'model.onnx')])
    expect(loaded.has('onnxruntime-node')).toBe(true)
  }, 60_000)
})
