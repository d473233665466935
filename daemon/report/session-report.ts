/**
 * Gathers a run report's inputs from a daemon's job session (runner, recorder, traffic) and
 * keeps the address book that turns per-connection byte counts into bytes by peer.
 */
import type { Libp2p } from '@libp2p/interface'
import type { TrafficCounts } from '../../protocols/node/index.js'
import type { JobSession } from '../peer/job-session.js'
import { buildRunReport } from './build-report.js'
import type { ReportRecorder } from './report-recorder.js'
import type { RunReport } from './report-schema.js'

/** Remote TCP address -> peer id of every connection opened, for bytes by peer. */
export interface ConnectionBook {
  start(): void
  stop(): void
  peerAt(address: string): string | undefined
}

const withoutPeerId = (address: string): string => address.split('/p2p/')[0]

export function createConnectionBook(libp2p: Pick<Libp2p, 'addEventListener' | 'removeEventListener'>): ConnectionBook {
  const peers = new Map<string, string>()
  const onOpen = (event: CustomEvent<{ remoteAddr: { toString(): string }, remotePeer: { toString(): string } }>): void => {
    // an address is one TCP connection's far end (ip + ephemeral or listen port): it maps to one peer
    if (peers.size < 100_000) peers.set(withoutPeerId(event.detail.remoteAddr.toString()), event.detail.remotePeer.toString())
  }
  return {
    start: () => libp2p.addEventListener('connection:open', onOpen as never),
    stop: () => libp2p.removeEventListener('connection:open', onOpen as never),
    peerAt: (address) => peers.get(withoutPeerId(address))
  }
}

/** TCP bytes by peer id; connections whose peer is unknown are listed by address. */
export function bytesByPeer(traffic: TrafficCounts, book: ConnectionBook): Array<{ peer: string, bytesSent: number, bytesReceived: number }> {
  const totals = new Map<string, { peer: string, bytesSent: number, bytesReceived: number }>()
  for (const [address, t] of traffic.byRemoteAddress()) {
    const peer = book.peerAt(address) ?? address
    const entry = totals.get(peer) ?? { peer, bytesSent: 0, bytesReceived: 0 }
    entry.bytesSent += t.sent
    entry.bytesReceived += t.received
    totals.set(peer, entry)
  }
  return [...totals.values()]
}

export interface SessionReportOptions {
  readonly source: RunReport['source']
  readonly peerId: string
  readonly peerName?: string
  readonly session: JobSession
  readonly recorder?: ReportRecorder
  readonly traffic?: TrafficCounts
  readonly connections?: ConnectionBook
}

/** The report of the session's job as this peer sees it now; undefined before it has a runner. */
export function reportFromSession(options: SessionReportOptions): RunReport | undefined {
  const { session, recorder } = options
  const runner = session.runner()
  if (runner === undefined) return undefined
  const result = runner.result()
  const progress = runner.progress()
  const info = session.runtimeInfo()
  return buildRunReport({
    source: options.source,
    peerId: options.peerId,
    peerName: options.peerName,
    jobId: session.jobId,
    config: runner.config,
    state: runner.state(),
    progress,
    parameterCount: info?.parameterCount,
    trainSamples: info?.trainSamples,
    result,
    // the runner keeps its history in its snapshot (a copy of the parameters: fine on request)
    history: result?.history ?? runner.currentSnapshot().meta.history,
    epochMarks: recorder?.epochMarks(),
    membership: { version: runner.membershipVersion(), snapshot: runner.membership().toSnapshot() },
    leaves: session.announcedLeaves(),
    stages: runner.stages.summary(),
    network: session.networkCounters(),
    bytesByPeer: options.traffic !== undefined && options.connections !== undefined ? bytesByPeer(options.traffic, options.connections) : undefined,
    lastStep: recorder?.lastStep(),
    wallMs: recorder?.elapsedMs()
  })
}
