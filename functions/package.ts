/**
 * The gradient function's deployment package: handler.mjs (the Lambda entry and everything it
 * imports, bundled by esbuild, onnxruntime-node left out) plus onnxruntime-node's JavaScript and
 * its Linux x64 binaries only (and onnxruntime-common), zipped. Nothing from libp2p or the daemon
 * gets in: the entry does not import them.
 */
import { build } from 'esbuild'
import { zipSync, type Zippable } from 'fflate'
import { existsSync, readFileSync } from 'node:fs'
import { readdir, readFile, stat } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

export const HANDLER_FILE = 'handler.mjs'

/** Files of the package, path in the zip -> bytes (before zipping; tests and the stand-in read it). */
export type PackageFiles = Map<string, Uint8Array>

export interface GradientPackage {
  readonly zip: Uint8Array
  readonly files: readonly string[]
  /** bytes before compression */
  readonly unzippedBytes: number
}

/** the Lambda entry: compiled (dist) or the TypeScript source */
function entryPath(): string {
  const js = fileURLToPath(new URL('./lambda-entry.js', import.meta.url))
  return existsSync(js) ? js : fileURLToPath(new URL('./lambda-entry.ts', import.meta.url))
}

async function bundleHandler(): Promise<Uint8Array> {
  const out = await build({
    entryPoints: [entryPath()],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: ['onnxruntime-node'],
    write: false,
    minify: true,
    legalComments: 'none',
    logLevel: 'silent',
    // CommonJS dependencies (the AWS SDK's) call require() for Node built-ins
    banner: { js: "import { createRequire as __p2pmldCreateRequire } from 'node:module'; const require = __p2pmldCreateRequire(import.meta.url);" }
  })
  return out.outputFiles[0].contents
}

async function addTree(files: PackageFiles, root: string, zipRoot: string, keep: (path: string) => boolean): Promise<void> {
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue
    const full = join(entry.parentPath, entry.name)
    const path = relative(root, full)
    if (keep(path)) files.set(`${zipRoot}/${path}`, new Uint8Array(await readFile(full)))
  }
}

function isPackageRoot(dir: string, name: string): boolean {
  // dist/cjs/package.json files ({ "type": "commonjs" }) have no name
  return existsSync(join(dir, 'package.json')) && (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string }).name === name
}

function packageRoot(name: string): string {
  // resolve the package's main file, then walk up to its package.json
  let dir = dirname(createRequire(import.meta.url).resolve(name))
  while (!isPackageRoot(dir, name)) {
    if (dirname(dir) === dir) throw new Error(`cannot find the ${name} package directory`)
    dir = dirname(dir)
  }
  return dir
}

/** The package's files (handler bundle + the ONNX Runtime parts the Linux x64 runtime loads). */
export async function gradientPackageFiles(): Promise<PackageFiles> {
  const files: PackageFiles = new Map()
  files.set(HANDLER_FILE, await bundleHandler())
  const ortNode = packageRoot('onnxruntime-node')
  const binaries = join('bin', 'napi-v6', 'linux', 'x64')
  if (!(await stat(join(ortNode, binaries)).catch(() => undefined))?.isDirectory()) {
    throw new Error(`onnxruntime-node has no ${binaries} in ${ortNode}: reinstall it (npm ci) on any platform; its package ships the Linux x64 binaries`)
  }
  await addTree(files, ortNode, 'node_modules/onnxruntime-node', (p) => p === 'package.json' || (p.startsWith('dist/') && p.endsWith('.js')) || p.startsWith(binaries + '/'))
  await addTree(files, packageRoot('onnxruntime-common'), 'node_modules/onnxruntime-common', (p) => p === 'package.json' || (p.startsWith('dist/') && (p.endsWith('.js') || p.endsWith('/package.json'))))
  return files
}

/** Zips the package (deflate level 6; the .node binaries keep mode 0755). */
export async function buildGradientPackage(): Promise<GradientPackage> {
  const files = await gradientPackageFiles()
  const tree: Zippable = {}
  let unzippedBytes = 0
  for (const [path, bytes] of files) {
    tree[path] = [bytes, { level: 6, os: 3, attrs: (0o100644 | (path.endsWith('.node') || path.endsWith('.so.1') ? 0o111 : 0)) << 16 }]
    unzippedBytes += bytes.length
  }
  return { zip: zipSync(tree), files: [...files.keys()].sort(), unzippedBytes }
}
