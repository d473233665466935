/**
 * Members known gone from the broker (daemon/peer/broker-gone-members.ts), with a stand-in probe
 * and heartbeat record: a silent member whose queue is gone is found within a few probe checks
 * and waited for again once heard; a member heard within the last heartbeat is never found gone
 * (a connection that blipped and came back); nothing counts right after this peer's connection
 * was re-made (the others are reconnecting too); a probe that fails teaches nothing.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { createBrokerGoneMembers, PROBE_SILENT_MS, RECONNECT_GRACE_MS, type BrokerGoneMembers } from '../../daemon/peer/broker-gone-members.js'

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }
const until = async (what: string, check: () => boolean): Promise<void> => {
  const end = Date.now() + 10_000
  while (!check()) {
    if (Date.now() > end) throw new Error(`not within 10 s: ${what}`)
    await sleep(20)
  }
}

describe('members gone from the broker', () => {
  const started: BrokerGoneMembers[] = []
  afterEach(() => { for (const g of started.splice(0)) g.stop() })

  const setUp = (probe: (peer: string) => Promise<boolean>) => {
    const heard = new Map<string, number>()
    const probed: string[] = []
    const gone = createBrokerGoneMembers({
      selfId: 'self',
      members: () => ['self', 'alive', 'dead'],
      lastHeard: (peer) => heard.get(peer) ?? 0,
      probe: async (peer) => { probed.push(peer); return await probe(peer) }
    })
    started.push(gone)
    gone.connected()
    return { gone, heard, probed }
  }

  it('finds a silent member whose control queue is gone, and waits for it again once heard', async () => {
    const { gone, heard, probed } = setUp(async (peer) => peer === 'dead')
    // both heard all along (a time ahead stands for a heartbeat every second, whatever the load)
    heard.set('alive', Date.now() + 60_000)
    heard.set('dead', Date.now() + 60_000)
    gone.start()
    await sleep(600)
    expect(probed).toEqual([])
    expect(gone.gone('dead')).toBe(false)
    // 'dead' goes silent: probed at the next check, found gone
    heard.set('dead', Date.now() - PROBE_SILENT_MS)
    await until('dead found gone', () => gone.gone('dead'))
    expect(probed).toEqual(['dead'])
    expect(gone.gone('alive')).toBe(false)
    // a heartbeat from 'dead' (a restarted process, a connection re-made): waited for again
    heard.set('dead', Date.now())
    expect(gone.gone('dead')).toBe(false)
  })

  it('takes an unroutable gradient only from a member silent for more than a heartbeat', () => {
    const { gone, heard } = setUp(async () => false)
    const now = Date.now()
    heard.set('alive', now - 300)
    heard.set('dead', now - PROBE_SILENT_MS - 100)
    gone.noteUnroutable(['alive', 'dead'], now)
    expect(gone.gone('alive')).toBe(false)
    expect(gone.gone('dead')).toBe(true)
  })

  it('counts no finding while this peer\'s connection was just re-made, nor a probe that failed', async () => {
    const { gone, heard, probed } = setUp(async () => { throw new Error('not connected to the broker') })
    heard.set('dead', 1)
    gone.connected()
    // silent members, but no probe within the grace
    gone.start()
    await sleep(600)
    expect(probed).toEqual([])
    const now = Date.now()
    gone.noteUnroutable(['dead'], now)
    expect(gone.gone('dead')).toBe(false)
    // the grace over, the same finding counts
    gone.noteUnroutable(['dead'], now + RECONNECT_GRACE_MS)
    expect(gone.gone('dead')).toBe(true)

    // a probe that throws (no broker here) finds nothing
    const second = setUp(async () => { throw new Error('not connected to the broker') })
    second.gone.start()
    await until('silent members probed', () => second.probed.length >= 2)
    await sleep(50)
    expect(second.gone.gone('dead')).toBe(false)
  })
})
