/**
 * Fault-test harness: N real peer daemons in this process on 127.0.0.1 (like the demo), with
 * what fault tests need and the demo does not offer: per-peer options (fault injection, private
 * network key, allowlist), every peer's step reports, and the live daemons while they train (to
 * attack them, or to start intruders next to them). Peer keys are created before any daemon
 * starts, so an allowlist can name every member.
 */
import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { DaemonConfig } from '../../config/daemon-config.js'
import type { JobConfig } from '../../config/job-config.js'
import type { JobResult } from '../../daemon/job/job-runner.js'
import { createLogger, silentLogger } from '../../daemon/logger.js'
import { createCachedDatasetLoader } from '../../ml/data/job-datasets.js'
import { createPeerDaemon, type PeerDaemon } from '../../daemon/peer/peer-daemon.js'
import type { StepReport } from '../../daemon/training/sync-trainer.js'
import type { FaultInjection } from '../../protocols/gradient-exchange/index.js'
import { loadOrCreatePeerKey, peerKeyPath } from '../../protocols/node/index.js'
import { generateKeyPairFromSeed, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'

export interface ClusterPeerOptions {
  readonly faults?: FaultInjection
  readonly psk?: Uint8Array
  readonly allowlist?: readonly string[]
  /** where this peer computes its gradients (absent: in process) */
  readonly offload?: DaemonConfig['offload']
}

export interface ClusterOptions {
  readonly peers: number
  readonly job: JobConfig
  /** per peer (demo name `peer-i`); `ids` are every member's peer id, known before start */
  readonly peerOptions?: (index: number, ids: readonly string[]) => ClusterPeerOptions
  /**
   * peer keys derived from this seed (default 1): shards go by rank among the sorted peer ids,
   * so with random ids an attacker would hold a different shard in every run
   */
  readonly keySeed?: number
}

export interface ClusterPeerResult {
  readonly name: string
  readonly peerId: string
  readonly result: JobResult | undefined
  readonly reports: readonly StepReport[]
  readonly rejections: Record<string, number>
  /** gradient bytes this peer sent (its session's network counters) */
  readonly bytesSent: number
  /** what stopped training on this peer when its job failed (result undefined) */
  readonly failure: unknown
}

export interface Cluster {
  readonly daemons: readonly PeerDaemon[]
  readonly peerIds: readonly string[]
  /** the host's TCP addresses (what the others bootstrap from) */
  readonly bootstrap: readonly string[]
  readonly root: string
  /** waits for every peer's job to finish */
  finished(): Promise<ClusterPeerResult[]>
  /** idempotent: stops every daemon and removes the data directories */
  stop(): Promise<void>
}

// every cluster a test file starts shares the read-only data splits (parsing the bundled MNIST
// costs ~0.6 s per peer; a file runs up to a dozen clusters of 4-5 peers)
const loadDatasets = createCachedDatasetLoader()

export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const root = await mkdtemp(join(tmpdir(), 'p2pmld-fault-'))
  const daemons: PeerDaemon[] = []
  const reports: StepReport[][] = []
  const failures: unknown[] = []
  const dataDir = (i: number): string => join(root, `peer-${i}`)
  const peerIds: string[] = []
  for (let i = 0; i < options.peers; i++) {
    const seed = createHash('sha256').update(`p2pmld-fault-${options.keySeed ?? 1}-${i}`).digest()
    await mkdir(dataDir(i), { recursive: true, mode: 0o700 })
    await writeFile(peerKeyPath(dataDir(i)), privateKeyToProtobuf(await generateKeyPairFromSeed('Ed25519', seed)), { mode: 0o600 })
  }
  for (let i = 0; i < options.peers; i++) peerIds.push(peerIdFromPrivateKey(await loadOrCreatePeerKey(dataDir(i))).toString())
  const job = { ...options.job, minPeers: options.peers }
  let stopped: Promise<void> | undefined
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      await Promise.all(daemons.map(async (d) => { await d.stop().catch(() => {}) }))
      await rm(root, { recursive: true, force: true })
    })()
    return stopped
  }
  try {
    let bootstrap: string[] = []
    for (let i = 0; i < options.peers; i++) {
      const own = options.peerOptions?.(i, peerIds) ?? {}
      const config: DaemonConfig = {
        dataDir: dataDir(i),
        listen: ['/ip4/127.0.0.1/tcp/0'],
        bootstrap,
        socketPath: join(dataDir(i), 'p2pmld.sock'),
        logLevel: 'silent',
        computeThreads: 1,
        ...(own.allowlist !== undefined ? { allowlist: [...own.allowlist] } : {}),
        ...(own.offload !== undefined ? { offload: own.offload } : {})
      }
      const peerReports: StepReport[] = []
      reports.push(peerReports)
      const daemon = await createPeerDaemon({
        config,
        // P2PMLD_TEST_LOG=debug: the peers' logs on stderr, to see why a cluster test hangs
        log: process.env.P2PMLD_TEST_LOG === undefined ? silentLogger() : createLogger(process.env.P2PMLD_TEST_LOG as 'debug', { peer: `peer-${i}` }),
        ...(i === 0 ? { job } : {}),
        controlSocket: false,
        name: `peer-${i}`,
        events: { onStep: (r) => peerReports.push(r), onFailed: (error) => { failures[i] = error } },
        faults: own.faults,
        psk: own.psk,
        loadDatasets
      })
      daemons.push(daemon)
      await daemon.start()
      if (i === 0) bootstrap = daemon.addresses().filter((a) => a.includes('/tcp/'))
    }
    return {
      daemons,
      peerIds,
      bootstrap: daemons[0].addresses().filter((a) => a.includes('/tcp/')),
      root,
      async finished() {
        const results = await Promise.all(daemons.map(async (d) => await d.jobDone()))
        return daemons.map((d, i) => ({
          name: `peer-${i}`,
          peerId: d.peerId,
          result: results[i],
          reports: reports[i],
          rejections: d.session()?.rejectionCounts() ?? {},
          bytesSent: d.session()?.networkCounters().bytesSent ?? 0,
          failure: failures[i]
        }))
      },
      stop
    }
  } catch (error) {
    await stop()
    throw error
  }
}

/** start, wait for the job to finish on every peer, stop */
export async function runCluster(options: ClusterOptions): Promise<ClusterPeerResult[]> {
  const cluster = await startCluster(options)
  try {
    return await cluster.finished()
  } finally {
    await cluster.stop()
  }
}

export function accuracyOf(peer: ClusterPeerResult): number {
  if (peer.result === undefined) throw new Error(`${peer.name} did not finish the job`)
  return peer.result.test.accuracy
}
