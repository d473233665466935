/**
 * The run report of a real two-daemon job: written to the host's data dir when the job ends,
 * served over the control socket ('report'), rebuilt from the checkpoint; bytes by peer, the
 * membership and the digests are the job's.
 */
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { createProgram } from '../../cli/program.js'
import { parseJobConfig } from '../../config/job-config.js'
import { createControlClient } from '../../daemon/control/index.js'
import { silentLogger } from '../../daemon/logger.js'
import { createPeerDaemon } from '../../daemon/peer/peer-daemon.js'
import { reportFromCheckpoint } from '../../daemon/report/checkpoint-report.js'
import { parseRunReport, type RunReport } from '../../daemon/report/report-schema.js'
import type { WrittenReport } from '../../daemon/report/write-report.js'
import { useLocalDaemons } from './support/local-daemons.js'

describe('run report of a two-daemon job', () => {
  const { root, daemons, configFor } = useLocalDaemons('p2pmld-run-report-')

  it('is written at the job\'s end, served by the daemon and rebuilt from the checkpoint', async () => {
    // a fixed step deadline: the derived one can exceed 1.67 s on a loaded machine, and the
    // final-agreement budget (3 x deadline) then is a fraction AbortSignal.timeout refuses
    const job = parseJobConfig({ id: 'report-job', model: 'mlp', epochs: 2, batchSize: 32, trainSamples: 512, minPeers: 2, stepDeadlineMs: 3000, aggregation: { rule: 'mean', f: 0 }, compression: { codec: 'qsgd', bits: 8 } }, 'test job')
    const written: Array<{ written: WrittenReport, report: RunReport }> = []
    const host = await createPeerDaemon({ config: configFor('host', []), log: silentLogger(), job, onReport: (w, r) => written.push({ written: w, report: r }) })
    daemons.push(host)
    await host.start()
    const peer = await createPeerDaemon({ config: configFor('peer', host.addresses()), log: silentLogger(), controlSocket: false })
    daemons.push(peer)
    await peer.start()
    const [hostResult, peerResult] = await Promise.all([host.jobDone(), peer.jobDone()])
    expect(hostResult?.digest).toBe(peerResult?.digest)
    // onReport runs once the files are on disk
    for (let i = 0; i < 100 && written.length === 0; i++) await new Promise((r) => setTimeout(r, 100))

    expect(written).toHaveLength(1)
    const files = readdirSync(join(root, 'host', 'reports')).sort()
    expect(files.map((f) => f.replace(/-\d{4}-.*\./, '-*.'))).toEqual(['report-job-*.html', 'report-job-*.json'])
    const fromDisk = parseRunReport(JSON.parse(readFileSync(written[0].written.json, 'utf8')), 'job-end report')
    expect(fromDisk.source).toBe('job-end')
    expect(fromDisk.result?.digest).toBe(hostResult?.digest)
    expect(fromDisk.epochs).toHaveLength(2)
    expect(fromDisk.epochs.every((e) => e.members === 2 && e.digest !== null)).toBe(true)
    expect(fromDisk.membership.members.map((m) => m.peerId).sort()).toEqual([host.peerId, peer.peerId].sort())
    expect(fromDisk.membership.timeline.every((p) => p.members === 2)).toBe(true)
    expect(fromDisk.digests.agree).toBe(true)
    expect(fromDisk.digests.peers[peer.peerId]).toBe(fromDisk.epochs.at(-1)?.digest)
    // bytes by peer: the other daemon, carrying most of the host's traffic (16 steps of 101,770 8-bit gradients)
    const toPeer = fromDisk.network.byPeer.find((p) => p.peer === peer.peerId)
    expect(toPeer?.bytesSent).toBeGreaterThan(16 * 101_770 * 0.25)
    expect(fromDisk.network.byPeer.reduce((n, p) => n + p.bytesSent, 0)).toBeLessThanOrEqual(fromDisk.network.bytesSent)
    expect(fromDisk.stages.find((s) => s.stage === 'compute')?.count).toBe(16)
    expect(fromDisk.job.trainSamples).toBe(512)

    // the control socket's 'report': the same job, its current view
    const client = createControlClient(join(root, 'host', 'p2pmld.sock'))
    try {
      const live = await client.report()
      expect(live.source).toBe('daemon')
      expect(live.job.id).toBe('report-job')
      expect(live.result?.digest).toBe(hostResult?.digest)
      expect(live.epochs).toEqual(fromDisk.epochs)
    } finally {
      await client.close()
    }

    // from the checkpoint written at the end: config, history, membership and digest
    await host.stop()
    const fromCheckpoint = await reportFromCheckpoint(join(root, 'host'))
    expect(fromCheckpoint.peer.id).toBe(host.peerId)
    expect(fromCheckpoint.job.state).toBe('finished')
    expect(fromCheckpoint.epochs.map((e) => e.validationAccuracy)).toEqual(fromDisk.epochs.map((e) => e.validationAccuracy))
    expect(fromCheckpoint.digests.own).toBe(hostResult?.digest)
    expect(fromCheckpoint.membership.members).toHaveLength(2)

    // `p2pmld report --checkpoint <data dir> --out <dir>`, run in process
    const out = join(root, 'out')
    const printed: string[] = []
    const write = process.stdout.write.bind(process.stdout)
    process.stdout.write = ((chunk: string) => { printed.push(String(chunk)); return true }) as typeof process.stdout.write
    try {
      await createProgram().parseAsync(['node', 'p2pmld', 'report', '--checkpoint', join(root, 'host'), '--out', out])
    } finally {
      process.stdout.write = write
    }
    expect(process.exitCode ?? 0).toBe(0)
    const html = /^run report: (\S+\.html)$/m.exec(printed.join(''))?.[1]
    expect(html?.startsWith(out)).toBe(true)
    expect(readdirSync(out).sort().map((f) => f.slice(-5))).toEqual(['.html', '.json'])
    expect(readFileSync(html!, 'utf8')).toContain(`<code id="own-digest">${hostResult!.digest}</code>`)
  }, 180_000)
})
