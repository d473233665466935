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
import type { JobConfig } from '../../../config/job-config.js'
import { silentLogger, type Logger } from '../../../daemon/logger.js'
import { createPeerDaemon, type PeerDaemon } from '../../../daemon/peer/peer-daemon.js'
import type { FaultInjection } from '../../../protocols/gradient-exchange/index.js'
import { createCachedDatasetLoader } from '../../../ml/data/job-datasets.js'

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

/** starts a daemon of one job: the host (with the job) when `host`, else one that joins through `bootstrap` */
export type StartDaemon = (name: string, bootstrap: string[], host?: boolean, log?: Logger) => Promise<PeerDaemon>

/** daemons of `job` on 127.0.0.1 sharing one dataset cache, stopped with the file's others; `hostFaults`: the host's inbound gradient faults (test-only) */
export function daemonStarter(local: LocalDaemons, job: JobConfig, hostFaults?: FaultInjection): StartDaemon {
  const loadDatasets = createCachedDatasetLoader()
  return async (name, bootstrap, host = false, log = silentLogger()) => {
    const daemon = await createPeerDaemon({ config: local.configFor(name, bootstrap), log, ...(host ? { job, ...(hostFaults === undefined ? {} : { faults: hostFaults }) } : {}), controlSocket: false, reportsDir: null, loadDatasets })
    local.daemons.push(daemon)
    await daemon.start()
    return daemon
  }
}

/** a host and `count - 1` members, returned once the host has run `steps` steps (within 60 s) */
export async function startTrainingMembers(start: StartDaemon, count: number, steps: number): Promise<PeerDaemon[]> {
  const host = await start('host', [], true)
  const members = [host, ...await Promise.all(Array.from({ length: count - 1 }, async (_, i) => await start(`member-${i + 1}`, host.addresses())))]
  const stepOf = (d: PeerDaemon): number => d.session()?.runner()?.progress().step ?? -1
  const deadline = Date.now() + 60_000
  while (stepOf(host) < steps) {
    if (Date.now() > deadline) throw new Error(`the ${count}-peer job did not reach step ${steps} (host at ${stepOf(host)})`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return members
}
