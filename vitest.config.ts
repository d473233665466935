import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['./polyfill.ts'],
    // onnxruntime-node is a native addon: separate processes are the safe pool
    pool: 'forks',
    // 2-core machines: two test files at a time
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000
  }
})
