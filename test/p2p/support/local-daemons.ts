/**
 * Daemons of one test file in this process, on 127.0.0.1: a temporary root for their data dirs
 * and sockets, a config per named daemon, and every daemon stopped and the root removed after
 * the file's tests (call inside a describe block).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll } from 'vitest'
import type { DaemonConfig } from '../../../config/daemon-config.js'
import type { PeerDaemon } from '../../../daemon/peer/peer-daemon.js'

export interface LocalDaemons {
  /** the temporary directory holding each daemon's data dir (root/<name>) */
  readonly root: string
  /** daemons to stop after the file's tests */
  readonly daemons: PeerDaemon[]
  /** a quiet 1-thread daemon config with its data dir and socket under root/<name> */
  configFor(name: string, bootstrap: string[]): DaemonConfig
}

export function useLocalDaemons(prefix: string): LocalDaemons {
  const root = mkdtempSync(join(tmpdir(), prefix))
  const daemons: PeerDaemon[] = []
  afterAll(async () => {
    await Promise.all(daemons.map((d) => d.stop().catch(() => {})))
    rmSync(root, { recursive: true, force: true })
  })
  return {
    root,
    daemons,
    configFor: (name, bootstrap) => ({
      dataDir: join(root, name),
      listen: ['/ip4/127.0.0.1/tcp/0'],
      bootstrap,
      socketPath: join(root, name, 'p2pmld.sock'),
      logLevel: 'silent',
      computeThreads: 1
    })
  }
}
