/**
 * Import first in a bench that times training steps: runs the bench again, once, under the glibc
 * setting the p2pmld launcher adds (cli/main.ts: huge pages for malloc's large chunks), so the
 * bench measures what a user's daemon runs; PyTorch, started from the bench, gets it too. Without
 * glibc the setting is ignored.
 */
import { spawnSync } from 'node:child_process'

const SETTING = 'glibc.malloc.hugetlb=1'

// a glibc.malloc.hugetlb of the caller's own (e.g. =0 for an A/B) is kept, as the launcher keeps it
if (!(process.env.GLIBC_TUNABLES ?? '').split(':').some((t) => t.startsWith('glibc.malloc.hugetlb='))) {
  const tunables = [SETTING, process.env.GLIBC_TUNABLES].filter((t) => t !== undefined && t !== '').join(':')
  const run = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, GLIBC_TUNABLES: tunables } })
  process.exit(run.status ?? 1)
}
