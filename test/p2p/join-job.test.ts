/**
 * `p2pmld start --join-job <id>` (PeerDaemonOptions.joinJobId): a daemon told which job to join
 * takes no other, neither through its bootstrap peer nor by auto-join while idle; a daemon told
 * the job its bootstrap peer runs joins it. Four daemons in this process on 127.0.0.1.
 */
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { createPeerDaemon, type PeerDaemon } from '../../daemon/peer/peer-daemon.js'
import { createCachedDatasetLoader } from '../../ml/data/job-datasets.js'
import { sleep } from '../e2e/support/daemon-process.js'
import { useLocalDaemons } from './support/local-daemons.js'

describe('a daemon told which job to join', () => {
  const local = useLocalDaemons('p2pmld-join-job-')

  it('joins that job and no other, through its bootstrap peer or by auto-join', async () => {
    const job = parseJobConfig({ id: `join-job-${process.pid}`, model: 'mlp', epochs: 1, batchSize: 64, trainSamples: 1024, minPeers: 2, aggregation: { rule: 'mean', f: 0 } }, 'test job')
    const loadDatasets = createCachedDatasetLoader()
    const lines: Array<{ name: string, msg: string, err?: string }> = []
    const start = async (name: string, bootstrap: string[], extra: { job?: typeof job, joinJobId?: string }): Promise<PeerDaemon> => {
      const d = await createPeerDaemon({
        config: local.configFor(name, bootstrap),
        log: pino({ level: 'info' }, { write: (line: string) => { lines.push({ ...JSON.parse(line) as { msg: string, err?: string }, name }) } }),
        controlSocket: false,
        reportsDir: null,
        loadDatasets,
        autoJoin: true,
        ...extra
      })
      local.daemons.push(d)
      await d.start()
      return d
    }
    // idle with auto-join and no bootstrap peer: the host dials it, so it is connected to a job
    const idle = await start('idle', [], { joinJobId: 'another-job' })
    const host = await start('host', idle.addresses().map((a) => a.toString()), { job })
    const bootstrap = host.addresses().map((a) => a.toString())
    // told another job, joining through the host as its bootstrap peer
    const other = await start('other', bootstrap, { joinJobId: 'another-job' })
    // the host's job waits for a second member: auto-join asks connected peers every 2 s, so a
    // daemon that took any job would have joined it within this wait (and made it start)
    await sleep(5_000)
    expect(lines.filter((l) => l.name === 'other').map((l) => l.err ?? '').join('\n')).toContain(`runs job ${job.id}, not another-job`)
    expect(idle.session()).toBeUndefined()
    expect(other.session()).toBeUndefined()
    expect(host.session()?.runner()?.progress().step ?? 0).toBe(0)
    // told the host's job: joins it, and the two run it to the end (minPeers 2)
    const member = await start('member', bootstrap, { joinJobId: job.id })
    const [hosted, joined] = await Promise.all([host.jobDone(), member.jobDone()])
    expect(hosted?.digest).toBeDefined()
    expect(joined?.digest).toBe(hosted?.digest)
    // neither of the two others ever took the job
    expect(idle.session()).toBeUndefined()
    expect(other.session()).toBeUndefined()
    expect(lines.filter((l) => (l.name === 'idle' || l.name === 'other') && /auto-join/.test(l.msg))).toEqual([])
  }, 120_000)
})
