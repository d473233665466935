/**
 * A private job: 3 members share a pre-shared key and allow only each other. Two intruders try
 * to get in while it trains: one with a different key, one with the right key but not on the
 * allowlist. Neither connects, joins, nor gets a gradient stream open; the job finishes as usual.
 * What was refused is seen: the members count the refusals by reason (not-allowlisted, and
 * handshake-failed for the other key), and each intruder's
 * log says the peer closed the connection and to check the --psk-file and the allowlist, not the
 * address.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { pino } from 'pino'
import { createPeerDaemon, type PeerDaemon } from '../../daemon/peer/peer-daemon.js'
import { GRADIENT_PROTOCOL } from '../../protocols/gradient-exchange/index.js'
import { createPsk, parseMultiaddr } from '../../protocols/node/index.js'
import { accuracyOf, startCluster } from './cluster.js'

const job = parseJobConfig({
  id: 'private-job',
  model: 'mlp',
  seed: 3,
  epochs: 2,
  batchSize: 32,
  trainSamples: 2048,
  minPeers: 3,
  // every peer is alive: a long deadline keeps a loaded machine's hiccups from dropping gradients
  stepDeadlineMs: 30_000,
  optimizer: { type: 'sgd', lr: 0.02, momentum: 0.9 },
  aggregation: { rule: 'trimmed-mean', f: 1 }
})

describe('pre-shared key and allowlist', () => {
  it('keep a peer with the wrong key and a peer not on the allowlist out of a training job', async () => {
    const psk = createPsk()
    const cluster = await startCluster({ peers: 3, job, peerOptions: (_i, ids) => ({ psk, allowlist: ids }) })
    const root = await mkdtemp(join(tmpdir(), 'p2pmld-intruder-'))
    const intruders: PeerDaemon[] = []
    const intruderWarnings: string[][] = []
    try {
      for (const [name, key] of [['wrong-key', createPsk()], ['not-allowed', psk]] as const) {
        const warnings: string[] = []
        intruderWarnings.push(warnings)
        const log = pino({ level: 'warn' }, { write: (line: string) => { warnings.push(String(JSON.parse(line).msg)) } })
        const intruder = await createPeerDaemon({
          config: { dataDir: join(root, name), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [...cluster.bootstrap], socketPath: join(root, name, 's.sock'), logLevel: 'silent', computeThreads: 1 },
          log,
          controlSocket: false,
          name,
          psk: key
        })
        intruders.push(intruder)
        await intruder.start()
      }
      const members = new Set(cluster.peerIds)
      // while the job trains: each intruder dials a member's gradient protocol directly
      const directDials = await Promise.allSettled(intruders.map(async (intruder) => {
        const stream = await intruder.node().libp2p.dialProtocol(parseMultiaddr(cluster.bootstrap[0]), GRADIENT_PROTOCOL, { signal: AbortSignal.timeout(5_000) })
        await stream.close()
      }))
      const seen = new Set<string>()
      const watch = setInterval(() => {
        intruders.forEach((intruder, i) => { for (const p of intruder.node().connectedPeers()) if (members.has(p)) seen.add(`intruder ${i} saw member ${cluster.peerIds.indexOf(p)}`) })
        cluster.daemons.forEach((d, i) => { for (const p of d.node().connectedPeers()) if (!members.has(p)) seen.add(`member ${i} saw ${intruders.findIndex((x) => x.peerId === p)}`) })
      }, 100)
      const results = await cluster.finished().finally(() => clearInterval(watch))

      for (const outcome of directDials) expect(outcome.status).toBe('rejected')
      // no member ever listed an intruder's connection (the gater drops it once Noise names the
      // peer); the allowed-key intruder may list its side of it for that moment, so that side is
      // only checked to be gone at the end, with every stream it tried refused
      expect([...seen].filter((s) => s.startsWith('member'))).toEqual([])
      for (const intruder of intruders) {
        expect(intruder.session()?.runner()).toBeUndefined()
        expect(intruder.node().connectedPeers().filter((p) => members.has(p))).toEqual([])
      }
      // the job saw only its members, at every step, and finished normally
      for (const peer of results) {
        expect(peer.reports.length).toBeGreaterThan(0)
        for (const r of peer.reports) {
          expect([...r.members].sort()).toEqual([...cluster.peerIds].sort())
          expect(r.contributors).toHaveLength(3)
        }
        expect(accuracyOf(peer)).toBeGreaterThan(0.75)
      }
      expect(new Set(results.map((p) => p.result?.digest)).size).toBe(1)
      // the refusals were counted by reason where they happened (the bootstrap member, which
      // every intruder dials), and each intruder was told what probably went wrong (by its first
      // failed attempt, which may end after a short job on a fast machine: waited for): the key
      // and the allowlist, whether the member closed the connection or, the other key's handshake
      // left unanswered, the dial timed out (a fresh-clone CI run: every attempt of one intruder)
      const told = (warnings: string[]): boolean => warnings.some((w) =>
        w.includes('the peer closed the connection: check that both use the same --psk-file and that this peer id is on its allowlist') ||
        w.includes('no answer from the bootstrap peer in time; retrying (check that both use the same --psk-file, that this peer id is on its allowlist'))
      for (const end = Date.now() + 30_000; !intruderWarnings.every(told) && Date.now() < end;) await new Promise((resolve) => setTimeout(resolve, 200))
      for (const warnings of intruderWarnings) {
        expect(told(warnings), warnings.join(' | ')).toBe(true)
        // a dial that timed out (the other key's handshake left unanswered) may name the address
        // too, but never the address alone
        expect(warnings.filter((w) => w.includes('check the address') && !w.includes('--psk-file')), warnings.join(' | ')).toEqual([])
      }
      // the intruder with another key failed the pre-shared-key handshake: counted once the host
      // side of its connection closes (libp2p's inbound upgrade may hold it until its timeout)
      const node = cluster.daemons[0].node()
      for (const end = Date.now() + 30_000; (node.refusedConnections()['handshake-failed'] ?? 0) === 0 && Date.now() < end;) await new Promise((resolve) => setTimeout(resolve, 200))
      const refused = node.refusedConnections()
      expect(refused['not-allowlisted'] ?? 0).toBeGreaterThan(0)
      expect(refused['handshake-failed'] ?? 0).toBeGreaterThan(0)
      console.log(`security: refused at the bootstrap member ${JSON.stringify(refused)}`)
      console.log(`security: accuracy ${accuracyOf(results[0])}, seen ${JSON.stringify([...seen])}, direct dials ${directDials.map((d) => d.status === 'rejected' ? (d.reason as Error).name : 'open').join(', ')}`)
    } finally {
      await Promise.all(intruders.map(async (d) => { await d.stop() }))
      await cluster.stop()
      await rm(root, { recursive: true, force: true })
    }
  }, 120_000)
})
