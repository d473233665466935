/**
 * Import first in a bench that times training steps: runs the bench again, once, under the glibc
 * setting and the Node flag the p2pmld launcher adds (cli/main.ts: huge pages for malloc's large
 * chunks; garbage collection on the main thread only), so the bench measures what a user's daemon
 * runs; PyTorch, started from the bench, gets the glibc setting too. Without glibc that setting is
 * ignored.
 */
import { spawnSync } from 'node:child_process'

const SETTING = 'glibc.malloc.hugetlb=1'
const GC_FLAG = '--single-threaded-gc'

// a glibc.malloc.hugetlb of the caller's own (e.g. =0 for an A/B) is kept, as the launcher keeps
// it; so is a GC choice (node --no-single-threaded-gc for an A/B)
const hasTunable = (process.env.GLIBC_TUNABLES ?? '').split(':').some((t) => t.startsWith('glibc.malloc.hugetlb='))
const hasGcChoice = process.execArgv.some((a) => a === GC_FLAG || a === '--no-single-threaded-gc')
if (!hasTunable || !hasGcChoice) {
  const tunables = hasTunable ? process.env.GLIBC_TUNABLES : [SETTING, process.env.GLIBC_TUNABLES].filter((t) => t !== undefined && t !== '').join(':')
  const run = spawnSync(process.execPath, [...(hasGcChoice ? [] : [GC_FLAG]), ...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, GLIBC_TUNABLES: tunables } })
  process.exit(run.status ?? 1)
}
