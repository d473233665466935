/**
 * A Byzantine donor in front of a joiner (issue 20): a joiner takes one range of the state from
 * each member that holds it (protocols/state-sync/fetch-from-donors.ts). One of the four members
 * trains honestly but its state-sync server lies: it announces its true state digest and sends
 * its range (parameters or optimizer state) with values changed. The joiner finds the reassembled parameters do not match
 * the digest the donors announced, takes the whole state from a donor instead and checks it
 * against that digest, then trains: all five end with one digest. Before the check, the joiner
 * adopted the forged values and relied on the per-step digest comparison to find it diverged.
 */
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import type { PeerDaemon } from '../../daemon/peer/peer-daemon.js'
import { toTrainingSnapshot } from '../../daemon/job/snapshot-conversion.js'
import { encodeSnapshot, encodeSnapshotRange, stateDigest } from '../../protocols/snapshot/index.js'
import { STATE_SYNC_PROTOCOL, StateSyncRequestSchema } from '../../protocols/state-sync/index.js'
import { createStreamReader } from '../../protocols/state-sync/stream-reader.js'
import * as lp from 'it-length-prefixed'
import type { Stream } from '@libp2p/interface'
import { daemonStarter, startTrainingMembers, useLocalDaemons } from '../p2p/support/local-daemons.js'

/** replace `daemon`'s state-sync server with one that announces its true digest and sends forged values */
async function lieAboutState (daemon: PeerDaemon, served: string[]): Promise<void> {
  const libp2p = daemon.node().libp2p
  await libp2p.unhandle(STATE_SYNC_PROTOCOL)
  const send = (stream: Stream, bytes: Uint8Array): void => { stream.send(lp.encode.single(bytes)) }
  const json = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value))
  await libp2p.handle(STATE_SYNC_PROTOCOL, async (stream: Stream) => {
    const reader = createStreamReader(stream, 64 * 1024)
    let raw: unknown
    for await (const frame of lp.decode(reader)) {
      raw = JSON.parse(new TextDecoder().decode(frame.subarray()))
      break
    }
    reader.release()
    const request = StateSyncRequestSchema.parse(raw)
    const own = toTrainingSnapshot(await (daemon.session()?.snapshotFor(request.minStep ?? 0, AbortSignal.timeout(30_000)) as Promise<never>))
    const digest = stateDigest(own.params, own.optimizerState)
    const forged = { ...own, params: own.params.map((v) => -v), optimizerState: own.optimizerState.map((v) => v + 1) }
    served.push(request.range === undefined ? 'whole' : `range ${request.range.index}/${request.range.count}`)
    if (request.range === undefined) {
      const whole = encodeSnapshot(forged, { checksum: false })
      send(stream, json({ ok: true, totalBytes: whole.byteLength, step: own.step }))
      for (const chunk of whole.chunks) send(stream, chunk)
    } else {
      const part = encodeSnapshotRange(forged, request.range.index, request.range.count, 1 << 20)
      send(stream, json({ ok: true, totalBytes: part.byteLength, step: own.step, range: part.range, digest }))
      for (const chunk of part.chunks) send(stream, chunk)
    }
    await stream.close()
  })
}

describe('a member whose state-sync server lies, in front of a joiner', () => {
  const local = useLocalDaemons('p2pmld-byzantine-donor-')

  it('the joiner refuses the forged range, takes a state the donors vouch for, and trains', async () => {
    const job = parseJobConfig({
      id: 'byzantine-donor', model: 'mlp', epochs: 2, batchSize: 16, trainSamples: 2048, minPeers: 4, stepDeadlineMs: 5000,
      aggregation: { rule: 'trimmed-mean', f: 1 }, earlyStopping: { patience: 0 }
    }, 'test job')
    const start = daemonStarter(local, job)
    const members = await startTrainingMembers(start, 4, 10)
    const host = members[0]
    const liar = members[3]
    const served: string[] = []
    await lieAboutState(liar, served)

    const fetches: Array<{ from: string[], verified: boolean }> = []
    const fallbacks: string[] = []
    const joinerLog = pino({ level: 'info' }, {
      write: (line: string) => {
        const l = JSON.parse(line) as { msg: string, from?: string[] | string, verified?: boolean, reason?: string }
        if (l.msg.startsWith('fetched the state')) fetches.push({ from: l.from as string[], verified: l.verified === true })
        if (l.msg.startsWith('state transfer in ranges failed')) fallbacks.push(`${String(l.from)}: ${l.reason ?? ''}`)
      }
    })
    const joiner = await start('joiner', host.addresses(), false, joinerLog)
    const results = await Promise.all([...members, joiner].map(async (d) => await d.jobDone()))
    console.log(`byzantine donor: liar served ${served.join(', ')}; joiner fetches ${JSON.stringify(fetches.map((f) => ({ from: f.from.map((id) => members.findIndex((m) => m.peerId === id)), verified: f.verified })))}; fallbacks ${fallbacks.length}`)

    // the liar was asked for its range, and the forgery was seen
    expect(served.some((s) => s.startsWith('range'))).toBe(true)
    expect(fallbacks.length).toBeGreaterThanOrEqual(1)
    expect(fallbacks[0]).toMatch(/does not match the digest they announced/)
    // the state taken came whole from one honest donor and matched the announced digest
    expect(fetches).toHaveLength(1)
    expect(fetches[0].verified).toBe(true)
    expect(fetches[0].from).toHaveLength(1)
    expect(fetches[0].from[0]).not.toBe(liar.peerId)
    // it trained as a member and ended with everyone's parameters
    expect(joiner.session()?.runner()?.membership().record(joiner.peerId)?.joinStep).toBeGreaterThan(10)
    expect(results.every((r) => r?.reason === 'epochs')).toBe(true)
    expect(new Set(results.map((r) => r?.digest)).size).toBe(1)
  }, 180_000)
})
