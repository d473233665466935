// Starts a pool worker from the TypeScript sources (tests, `tsx bench/...`): registers tsx's ESM
// hooks in this worker thread, then loads the entry. Compiled builds start worker-entry.js directly.
import { register } from 'tsx/esm/api'

register()
await import('./worker-entry.ts')
