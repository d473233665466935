/**
 * Builds dist/ once for the files that run the CLI (e2e, and the CLI's own tests; a plain
 * `npx vitest run test/e2e` has no pretest build), as
 * `npm run build` does (tsc, then the CLI bundled): skipped when dist/cli/main.js is newer than
 * every source file; a lock directory keeps two test files (vitest runs two at a time) from
 * building at once.
 */
import { spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, readdirSync, rmdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'

export const ROOT = resolve(import.meta.dirname, '../../..')
export const CLI_MAIN = join(ROOT, 'dist/cli/main.js')
const SOURCE_DIRS = ['ml', 'protocols', 'functions', 'daemon', 'cli', 'config']
const LOCK = join(ROOT, 'dist', '.e2e-build.lock')

function newestSource(dir: string): number {
  let newest = 0
  if (!existsSync(dir)) return 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(path))
    else if (entry.name.endsWith('.ts') || entry.name.endsWith('.json')) newest = Math.max(newest, statSync(path).mtimeMs)
  }
  return newest
}

const isFresh = (): boolean => {
  if (!existsSync(CLI_MAIN)) return false
  const built = statSync(CLI_MAIN).mtimeMs
  return SOURCE_DIRS.every((d) => newestSource(join(ROOT, d)) <= built)
}

export async function ensureBuilt(): Promise<string> {
  mkdirSync(join(ROOT, 'dist'), { recursive: true })
  const deadline = Date.now() + 120_000
  for (;;) {
    if (isFresh()) return CLI_MAIN
    try {
      mkdirSync(LOCK)
      break
    } catch {
      // another test file is building: a lock older than 2 min is a leftover of a killed run
      try {
        if (Date.now() - statSync(LOCK).mtimeMs > 120_000) rmdirSync(LOCK)
      } catch {}
      if (Date.now() > deadline) throw new Error(`timed out waiting for the e2e build lock ${LOCK}`)
      await new Promise((r) => setTimeout(r, 500))
    }
  }
  try {
    if (isFresh()) return CLI_MAIN
    // tsc still emits when another module has a type error; the tests then say what broke
    const result = spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json')], { cwd: ROOT, encoding: 'utf8' })
    if (!existsSync(CLI_MAIN)) throw new Error(`npm run build produced no ${CLI_MAIN}:\n${result.stdout}${result.stderr}`)
    if (result.status !== 0) process.stderr.write(`e2e: tsc reported errors (dist/ emitted anyway):\n${result.stdout.slice(0, 4000)}\n`)
    // the CLI the tests spawn is the one users get: bundled (build/bundle-cli.mjs, npm run build's second half)
    const bundled = spawnSync(process.execPath, [join(ROOT, 'build/bundle-cli.mjs')], { cwd: ROOT, encoding: 'utf8' })
    if (bundled.status !== 0) throw new Error(`bundling the CLI failed:\n${bundled.stdout}${bundled.stderr}`)
    return CLI_MAIN
  } finally {
    rmdirSync(LOCK)
  }
}

/**
 * A private copy of dist/ under `dir` (with a link to node_modules), so a rebuild of dist/ by a
 * later test file or another developer cannot swap modules under daemons this file still spawns.
 * Returns the copy's cli/main.js.
 */
export function snapshotDist(dir: string): string {
  const app = join(dir, 'app')
  cpSync(join(ROOT, 'dist'), join(app, 'dist'), { recursive: true, filter: (src) => !src.endsWith('.map') && !src.includes('.e2e-build.lock') })
  writeFileSync(join(app, 'package.json'), JSON.stringify({ type: 'module' }))
  symlinkSync(join(ROOT, 'node_modules'), join(app, 'node_modules'), 'dir')
  return join(app, 'dist/cli/main.js')
}
