/**
 * The members known gone because their port refuses connections (daemon/peer/refused-members.ts):
 * a refused push or a refused dial after a member's disconnect lists it; a connection from it, or
 * a push that reaches it, unlists it; a refusal from a dial begun before its new connection opened
 * does not list it again (a CLI walk: a member restarted from its data dir was taken for gone and
 * a step went on without it). The node is a stand-in: its events and dials are the test's.
 */
import { describe, expect, it } from 'vitest'
import { createRefusedMembers } from '../../daemon/peer/refused-members.js'

const refusedError = (): Error => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:4001'), { code: 'ECONNREFUSED' })

function standIn (dial: (peer: string) => Promise<unknown>) {
  const events = new EventTarget()
  const connected = new Set<string>()
  const dialed: string[] = []
  const node = {
    libp2p: {
      addEventListener: (type: string, handler: (event: Event) => void) => { events.addEventListener(type, handler) },
      removeEventListener: (type: string, handler: (event: Event) => void) => { events.removeEventListener(type, handler) },
      dial: async (peer: { toString(): string }) => {
        dialed.push(peer.toString())
        return await dial(peer.toString())
      }
    },
    connectedPeers: () => [...connected]
  }
  const emit = (type: 'peer:connect' | 'peer:disconnect', peer: string): void => {
    if (type === 'peer:connect') connected.add(peer)
    else connected.delete(peer)
    events.dispatchEvent(new CustomEvent(type, { detail: { toString: () => peer } }))
  }
  return { node: node as never, emit, dialed }
}

describe('members found refusing connections', () => {
  it('are listed by a refused push and unlisted by a connection or a push that reaches them', () => {
    const { node, emit } = standIn(async () => await Promise.reject(refusedError()))
    const refused = createRefusedMembers({ node, isMember: () => true })
    refused.start()
    refused.notePush({ reached: ['a'], refused: ['b'] }, Date.now())
    expect([refused.refusing('a'), refused.refusing('b')]).toEqual([false, true])
    emit('peer:connect', 'b')
    expect(refused.refusing('b')).toBe(false)
    // a push begun before b's new connection opened: its refusal is old news
    emit('peer:disconnect', 'b')
    const before = Date.now() - 1_000
    emit('peer:connect', 'b')
    refused.notePush({ reached: [], refused: ['b'] }, before)
    expect(refused.refusing('b')).toBe(false)
    refused.notePush({ reached: [], refused: ['c'] }, Date.now())
    refused.notePush({ reached: ['c'], refused: [] }, Date.now())
    expect(refused.refusing('c')).toBe(false)
    refused.stop()
  })

  it('dials a member whose last connection closed: refused lists it, a timeout does not; others are not dialed', async () => {
    const answers: Record<string, () => Promise<unknown>> = {
      gone: async () => await Promise.reject(new AggregateError([refusedError(), refusedError()], 'All multiaddr dials failed')),
      cut: async () => await Promise.reject(new Error('The operation was aborted due to timeout'))
    }
    const { node, emit, dialed } = standIn(async (peer) => await answers[peer]())
    const refused = createRefusedMembers({ node, isMember: (peer) => peer !== 'stranger' })
    refused.start()
    for (const peer of ['gone', 'cut', 'stranger']) {
      emit('peer:connect', peer)
      emit('peer:disconnect', peer)
    }
    await new Promise((resolve) => setTimeout(resolve, 10))
    expect(dialed.sort()).toEqual(['cut', 'gone'])
    expect(['gone', 'cut', 'stranger'].map((p) => refused.refusing(p))).toEqual([true, false, false])
    refused.stop()
    expect(refused.refusing('gone')).toBe(false)
  })
})
