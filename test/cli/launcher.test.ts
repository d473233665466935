/**
 * The p2pmld executable (dist/cli/main.js run through its #! line, as npm's bin link and the
 * Docker image run it) starts Node with glibc's huge pages for large malloc chunks added to the
 * user's own GLIBC_TUNABLES, and with garbage collection on the main thread only (cli/main.ts says
 * why). Node itself reports what it was started with.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ensureBuilt } from '../e2e/support/build.js'

let cli = ''
const dir = mkdtempSync(join(tmpdir(), 'p2pmld-launcher-'))
/** loaded by the started Node before the CLI: prints the GLIBC_TUNABLES and the Node flags it was given */
const probe = join(dir, 'probe.mjs')
beforeAll(async () => {
  cli = await ensureBuilt()
  writeFileSync(probe, 'console.log(`tunables=${process.env.GLIBC_TUNABLES}`)\nconsole.log(`flags=${process.execArgv.join(\' \')}`)\n')
}, 180_000)
afterAll(() => { rmSync(dir, { recursive: true, force: true }) })

/** what the probe printed after `key=` in the Node process the executable started */
function seen(env: NodeJS.ProcessEnv, key: 'tunables' | 'flags'): string {
  const run = spawnSync(cli, ['--version'], {
    encoding: 'utf8',
    env: { ...env, NODE_OPTIONS: `--import=${probe}` }
  })
  expect(run.status, run.stderr).toBe(0)
  const line = run.stdout.split('\n').find((l) => l.startsWith(`${key}=`))
  expect(line, run.stdout).toBeDefined()
  return (line as string).slice(key.length + 1)
}
const tunablesSeen = (env: NodeJS.ProcessEnv): string => seen(env, 'tunables')

describe('the p2pmld executable', () => {
  it('adds glibc.malloc.hugetlb=1 before the user\'s GLIBC_TUNABLES, so the user\'s own settings stay and win (glibc takes the last)', () => {
    const { GLIBC_TUNABLES: _, ...clean } = process.env
    expect(tunablesSeen(clean).split(':')).toContain('glibc.malloc.hugetlb=1')
    expect(tunablesSeen({ ...clean, GLIBC_TUNABLES: 'glibc.malloc.check=0' }).split(':')).toEqual(['glibc.malloc.hugetlb=1', 'glibc.malloc.check=0'])
    expect(tunablesSeen({ ...clean, GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0' }).split(':')).toEqual(['glibc.malloc.hugetlb=1', 'glibc.malloc.hugetlb=0'])
  })

  it('starts Node with garbage collection on the main thread only', () => {
    expect(seen(process.env, 'flags').split(' ')).toContain('--single-threaded-gc')
  })
})
