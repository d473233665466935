/**
 * The CLI loads a command's heavy half (ONNX Runtime with the model zoo's training graphs, libp2p,
 * the AWS SDK) only when that command runs it: `p2pmld --help`, `status` or `stop` load zod,
 * commander and the config, ~220 ES modules in ~0.4 s. (One `report` import pulled in libp2p and
 * `estimate`'s and `export`'s ONNX Runtime: 880, ~0.95 s for every command.) A Node module hook
 * started before the CLI records each ES module the process loads, and at exit every CommonJS
 * module in require's cache (a package reached only through require() inside CommonJS). The CLI
 * is bundled (build/bundle-cli.mjs): a file of the bundle counts as loading the packages the
 * bundler put in it.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ensureBuilt } from '../e2e/support/build.js'

let cli = ''
/** file URL of the bundled CLI's directory, and the npm packages in each of its files (build/bundle-cli.mjs) */
let bundleDir = ''
let bundlePackages: Record<string, string[] | undefined> = {}
const dir = mkdtempSync(join(tmpdir(), 'p2pmld-startup-'))
const hooks = join(dir, 'hooks.mjs')
const register = join(dir, 'register.mjs')
beforeAll(async () => {
  cli = await ensureBuilt()
  bundleDir = pathToFileURL(dirname(cli)).href + '/'
  bundlePackages = JSON.parse(readFileSync(join(dirname(cli), 'bundle-packages.json'), 'utf8')) as Record<string, string[]>
  // the hook runs on Node's loader thread: it appends each URL to the file its process names
  writeFileSync(hooks, [
    "import { appendFileSync } from 'node:fs'",
    'export async function load(url, context, next) { appendFileSync(process.env.P2PMLD_TEST_LOADED, url + "\\n"); return await next(url, context) }'
  ].join('\n'))
  writeFileSync(register, [
    "import { appendFileSync } from 'node:fs'",
    "import { createRequire, register } from 'node:module'",
    `register(${JSON.stringify(pathToFileURL(hooks).href)})`,
    "const cache = createRequire(import.meta.url).cache",
    "process.on('exit', () => { appendFileSync(process.env.P2PMLD_TEST_LOADED, Object.keys(cache).join('\\n') + '\\n') })"
  ].join('\n'))
}, 180_000)
afterAll(() => { rmSync(dir, { recursive: true, force: true }) })

interface Run {
  /** the packages (node_modules names) loaded */
  readonly packages: Set<string>
  readonly status: number | null
  readonly stderr: string
  readonly stdout: string
}

/** runs the CLI with `args` (no daemon at its socket) and records what it loaded */
function runCli(args: readonly string[]): Run {
  const list = join(dir, `loaded-${args.join('-').replace(/[^\w-]/g, '_')}.txt`)
  writeFileSync(list, '')
  const run = spawnSync(process.execPath, ['--import', pathToFileURL(register).href, cli, ...args], {
    encoding: 'utf8',
    env: { ...process.env, P2PMLD_TEST_LOADED: list, P2PMLD_SOCKET: join(dir, 'no-daemon.sock') },
    timeout: 60_000
  })
  const paths = readFileSync(list, 'utf8').split('\n').filter((l) => l !== '')
  // the bundled CLI's files (main.js and its chunks) hold packages too: the bundler listed which
  const bundled = (u: string): string[] => u.startsWith(bundleDir) ? bundlePackages[u.slice(bundleDir.length)] ?? [] : []
  return { packages: new Set(paths.flatMap((u) => [...(/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(u)?.slice(1) ?? []), ...bundled(u)])), status: run.status, stderr: run.stderr, stdout: run.stdout }
}

/** ONNX Runtime, libp2p and its transports, the AWS SDK, the broker client */
const heavy = (packages: Set<string>): string[] => [...packages].filter((p) =>
  p === 'onnxruntime-node' || p === 'libp2p' || p.startsWith('@libp2p/') || p.startsWith('@chainsafe/libp2p') || p.startsWith('@aws-sdk/') || p === 'amqplib')

describe('p2pmld start-up', () => {
  it('the help, status and stop commands load no ONNX Runtime, libp2p, AWS SDK or broker client', () => {
    for (const args of [['--help'], ['status'], ['stop'], ['export', '--help'], ['estimate', '--help'], ['train', '--help'], ['report', '--help'], ['start', '--help']]) {
      const run = runCli(args)
      // the command ran to its end: help printed, or the client told there is no daemon (stop:
      // nothing to stop, on stdout)
      if (args.includes('--help')) expect(run.status, run.stderr).toBe(0)
      else expect(args[0] === 'stop' ? run.stdout : run.stderr).toMatch(/no daemon is running at .*no-daemon\.sock/)
      // the hooks saw the CLI load: commander (ES) parsed the arguments, pino (CommonJS) logs
      expect(run.packages.has('commander'), args.join(' ')).toBe(true)
      if (!args.includes('--help')) expect(run.packages.has('pino'), args.join(' ')).toBe(true)
      expect(heavy(run.packages), args.join(' ')).toEqual([])
    }
  }, 120_000)

  it('a command that needs ONNX Runtime still loads it when it runs; a report from a checkpoint does not', () => {
    // the checkpoint does not exist: the export fails after loading the exporter
    const exported = runCli(['export', '--checkpoint', join(dir, 'missing'), '--out', join(dir, 'model.onnx')])
    expect(exported.stderr).toContain(`checkpoint ${join(dir, 'missing')} does not exist`)
    expect(exported.packages.has('onnxruntime-node')).toBe(true)
    // a report reads the checkpoint and the peer key: no ONNX Runtime, no libp2p node
    const reported = runCli(['report', '--checkpoint', join(dir, 'missing')])
    expect(reported.stderr).toContain(`checkpoint ${join(dir, 'missing')} does not exist`)
    expect(heavy(reported.packages).filter((p) => p !== '@libp2p/peer-id' && p !== '@libp2p/crypto' && p !== '@libp2p/interface')).toEqual([])
  }, 60_000)
})
