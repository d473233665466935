/**
 * Refusals the protocol expects (a job request to a peer that runs no job, an async job's stale
 * gradient) are counted apart from rejections, which are what a user should look at: a real idle
 * daemon on 127.0.0.1 answers real libp2p job requests (its counts read through status and
 * Prometheus); the log's counts and levels unit-tested.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import * as lp from 'it-length-prefixed'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { PassThrough } from 'node:stream'
import { createLogger, silentLogger } from '../../daemon/logger.js'
import { createPeerDaemon } from '../../daemon/peer/peer-daemon.js'
import { createRejectionLog } from '../../daemon/peer/rejection-log.js'
import { JOB_PROTOCOL } from '../../protocols/job/job-protocol.js'
import { createPeerNode, parseMultiaddr } from '../../protocols/node/index.js'

const dir = mkdtempSync(join(tmpdir(), 'p2pmld-refusals-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('expected refusals', () => {
  it('the rejection log counts expected refusals apart and logs them at debug level only', () => {
    const lines: Array<{ level: string, obj: Record<string, unknown>, msg: string }> = []
    const rejections = createRejectionLog({
      warn: (obj, msg) => lines.push({ level: 'warn', obj: obj as Record<string, unknown>, msg }),
      debug: (obj, msg) => lines.push({ level: 'debug', obj: obj as Record<string, unknown>, msg })
    })
    rejections.reject('stale', { step: 3 }, 'gradient for step 3 is outside the window', { expected: true })
    rejections.reject('stale', { step: 4 }, 'gradient for step 4 is outside the window', { expected: true })
    rejections.reject('codec', { step: 5 }, 'bucket 2 has norm NaN')
    expect(rejections.counts()).toEqual({ codec: 1 })
    expect(rejections.dropped()).toEqual({ stale: 2 })
    expect(rejections.total()).toBe(3)
    expect(lines.map((l) => [l.level, l.obj.reason])).toEqual([['debug', 'stale'], ['debug', 'stale'], ['warn', 'codec']])
    expect(lines[1].obj.droppedSoFar).toBe(2)
    expect(lines[2].msg).toBe('rejected inbound message: bucket 2 has norm NaN')
  })

  it('an idle daemon asked about a job counts the refusal as dropped; a malformed request as rejected', async () => {
    const dataDir = join(dir, 'idle')
    const daemon = await createPeerDaemon({
      config: { dataDir, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], socketPath: join(dataDir, 'p2pmld.sock'), logLevel: 'silent', computeThreads: 1, metricsPort: 0, metricsHost: '127.0.0.1' },
      log: silentLogger(),
      controlSocket: false
    })
    const asker = await createPeerNode({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] })
    try {
      await daemon.start()
      await asker.start()
      const address = parseMultiaddr(daemon.addresses()[0])
      const ask = async (bytes: Uint8Array): Promise<string> => {
        const stream = await asker.libp2p.dialProtocol(address, JOB_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
        stream.send(lp.encode.single(bytes))
        for await (const frame of lp.decode(stream)) {
          void stream.close().catch(() => {})
          return new TextDecoder().decode(frame.subarray())
        }
        return ''
      }
      const refused = JSON.parse(await ask(new TextEncoder().encode(JSON.stringify({ v: 1, type: 'digest', jobId: 'some-job', step: 1 })))) as { ok: boolean, error?: string }
      expect(refused.ok).toBe(false)
      expect(refused.error).toContain('this peer runs no job')
      expect(daemon.droppedCounts()).toEqual({ 'job-refused': 1 })
      expect(daemon.rejectionCounts()).toEqual({})
      expect(JSON.parse(await ask(new TextEncoder().encode('{"v": 1, "type": "dig')))).toEqual({ ok: false, error: 'request is not valid JSON' })
      expect(daemon.rejectionCounts()).toEqual({ 'job-bad-json': 1 })
      expect(daemon.droppedCounts()).toEqual({ 'job-refused': 1 })
      // Prometheus counts the daemon's refused requests too, not only its job session's messages
      const at = daemon.metrics()?.address()
      if (at === undefined) throw new Error('the daemon serves no metrics')
      const scraped = await (await fetch(`http://${at.host}:${at.port}/metrics`)).text()
      expect(scraped).toContain('\np2pmld_dropped_messages_total{reason="job-refused"} 1\n')
      expect(scraped).toContain('\np2pmld_rejected_messages_total{reason="job-bad-json"} 1\n')

      // a daemon bootstrapped to it waits for a job: info, not a warning at every retry
      const lines: string[] = []
      const sink = new PassThrough()
      sink.on('data', (chunk: Buffer) => lines.push(...chunk.toString().split('\n').filter((l) => l !== '')))
      const joinerDir = join(dir, 'joiner')
      const joiner = await createPeerDaemon({
        config: { dataDir: joinerDir, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [daemon.addresses()[0]], socketPath: join(joinerDir, 'p2pmld.sock'), logLevel: 'info', computeThreads: 1 },
        log: createLogger('info', {}, { destination: sink }),
        controlSocket: false
      })
      try {
        await joiner.start()
        const deadline = Date.now() + 15_000
        while (!lines.some((l) => l.includes('no job to join yet')) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
        const waits = lines.map((l) => JSON.parse(l) as { level: number, msg: string, err?: string }).filter((r) => /join/.test(r.msg))
        expect(waits.length).toBeGreaterThan(0)
        expect(waits.every((r) => r.level === 30 && r.msg === 'no job to join yet; asking again'), JSON.stringify(waits)).toBe(true)
        expect(waits[0].err).toContain('this peer runs no job')
      } finally {
        await joiner.stop()
      }
    } finally {
      await asker.stop()
      await daemon.stop()
    }
  })
})
