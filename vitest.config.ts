import { defineConfig } from 'vitest/config'

// The test workers (forked after this file loads) run the engine under the glibc setting the
// p2pmld launcher adds (cli/main.ts: huge pages for malloc's large chunks), as the daemon does.
// Without it each step page-faults its fresh output buffers 4 KiB at a time: vgg11's 8 steps in
// test/engine/paper-models.test.ts took 38.6 s alone (72 s in the suite) against 12.4 s with it.
// Placed first, so a GLIBC_TUNABLES of the caller's own wins (glibc takes the last).
process.env.GLIBC_TUNABLES = ['glibc.malloc.hugetlb=1', process.env.GLIBC_TUNABLES].filter((t) => t !== undefined && t !== '').join(':')

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['./polyfill.ts'],
    // onnxruntime-node is a native addon: separate processes are the safe pool
    pool: 'forks',
    // 2-core machines: two test files at a time
    maxWorkers: 2,
    // tests a file marks concurrent (describe.concurrent: its own daemon processes, waiting out
    // graces and deadlines) run two at a time
    maxConcurrency: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000
  }
})
