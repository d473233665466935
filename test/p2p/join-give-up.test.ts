/**
 * A daemon started with --bootstrap and --exit-when-done whose bootstrap peer is gone (its job
 * ended and its daemon exited before this one started) dialed the dead address for ever: the
 * flag's exit covered an evicted member only. With joinGiveUpMs it gives up once no bootstrap peer
 * could be reached for that long, and says why; a bootstrap peer that is up but runs no job yet
 * keeps it waiting (a `job submit` may come).
 */
import { describe, expect, it } from 'vitest'
import { createPeerDaemon, type PeerDaemon } from '../../daemon/peer/peer-daemon.js'
import { silentLogger } from '../../daemon/logger.js'
import { useLocalDaemons } from './support/local-daemons.js'

describe('the first join through bootstrap peers, with a give-up', () => {
  const local = useLocalDaemons('p2pmld-join-give-up-')
  const start = async (name: string, bootstrap: string[], joinGiveUpMs?: number): Promise<PeerDaemon> => {
    const daemon = await createPeerDaemon({ config: local.configFor(name, bootstrap), log: silentLogger(), controlSocket: false, reportsDir: null, ...(joinGiveUpMs === undefined ? {} : { joinGiveUpMs }) })
    local.daemons.push(daemon)
    await daemon.start()
    return daemon
  }

  it('gives up once no bootstrap peer could be reached for joinGiveUpMs, naming the address and the check', async () => {
    // a peer that was there and stopped: its address is a closed port
    const gone = await start('gone', [])
    const address = gone.addresses()[0]
    await gone.stop()
    const started = Date.now()
    const joiner = await start('joiner', [address], 1500)
    expect(await joiner.jobDone()).toBeUndefined()
    expect(Date.now() - started).toBeLessThan(15_000)
    expect(joiner.jobFailure()).toMatch(/^could not join a job: no bootstrap peer could be reached for 2 s \(check the --bootstrap address and that its daemon runs\): .*ECONNREFUSED/)
  }, 30_000)

  it('keeps waiting while a bootstrap peer is up but runs no job yet', async () => {
    const idle = await start('idle', [])
    const joiner = await start('patient', idle.addresses(), 1000)
    const outcome = await Promise.race([joiner.jobDone().then(() => 'gave up'), new Promise((resolve) => setTimeout(() => resolve('still waiting'), 4000))])
    expect(outcome).toBe('still waiting')
    expect(joiner.jobFailure()).toBeUndefined()
    expect(joiner.joining()).toBe(true)
  }, 30_000)
})
