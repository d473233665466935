/**
 * Gossipsub as our peer nodes run it (StrictSign, `fastMessageId`: a copy of an accepted message is
 * dropped before its signature is checked). A message forged in a member's name with the sequence
 * number it will use next, sent ahead of the genuine one, must be refused, and neither it nor a
 * message the attacker signs as itself with that sequence number may keep the genuine message out;
 * a copy of an accepted message with other data is not delivered either.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { RPC } from '@libp2p/gossipsub/message'
import { afterEach, describe, expect, it } from 'vitest'
import { fastMessageId } from '../../protocols/node/fast-message-id.js'
import type { PeerNode } from '../../protocols/node/index.js'
import { newNode, stopAll, waitFor } from './peer-helpers.js'

const TOPIC = 'gossip-signatures-test'
/** gossipsub signs "libp2p-pubsub:" + the message's protobuf without signature and key */
const SIGN_PREFIX = new TextEncoder().encode('libp2p-pubsub:')
const text = (s: string): Uint8Array => new TextEncoder().encode(s)

function seqnoBytes (seqno: bigint): Uint8Array {
  const out = new Uint8Array(8)
  new DataView(out.buffer).setBigUint64(0, seqno)
  return out
}

/** an RPC frame as gossipsub reads it from a stream: unsigned varint length, then the protobuf */
function frame (rpc: Uint8Array): Uint8Array {
  const prefix: number[] = []
  for (let n = rpc.length; ; n >>>= 7) {
    if (n < 0x80) { prefix.push(n); break }
    prefix.push((n & 0x7f) | 0x80)
  }
  const out = new Uint8Array(prefix.length + rpc.length)
  out.set(prefix)
  out.set(rpc, prefix.length)
  return out
}

const nodes: PeerNode[] = []
afterEach(async () => { await stopAll(nodes.splice(0)) })

describe('gossip message ids and signatures', () => {
  it('fastMessageId is the origin and sequence number, and no accepted message has the id of one lacking them', () => {
    const from = Uint8Array.of(1, 2, 3)
    expect(fastMessageId({ from, seqno: Uint8Array.of(0, 9) })).toBe(fastMessageId({ from: Uint8Array.of(1, 2, 3), seqno: Uint8Array.of(0, 9) }))
    expect(fastMessageId({ from, seqno: Uint8Array.of(0, 9) })).not.toBe(fastMessageId({ from, seqno: Uint8Array.of(0, 10) }))
    expect(fastMessageId({ from, seqno: Uint8Array.of(7) })).not.toBe(fastMessageId({ from: Uint8Array.of(1, 2), seqno: Uint8Array.of(3, 7) }))
    // two origins, one sequence number
    expect(fastMessageId({ from, seqno: Uint8Array.of(0, 9) })).not.toBe(fastMessageId({ from: Uint8Array.of(1, 2, 4), seqno: Uint8Array.of(0, 9) }))
    expect(fastMessageId({ from })).toBe('')
    expect(fastMessageId({ seqno: Uint8Array.of(1) })).toBe('')
  })

  it('a message forged in a member\'s name ahead of its genuine one is refused, and the genuine one still arrives', async () => {
    const attackerKey = await generateKeyPair('Ed25519')
    const receiver = await newNode()
    await receiver.start()
    const member = await newNode({ bootstrap: receiver.dialableAddrs(), bootstrapInitialDelayMs: 50 })
    const attacker = await newNode({ privateKey: attackerKey, bootstrap: receiver.dialableAddrs(), bootstrapInitialDelayMs: 50 })
    nodes.push(receiver, member, attacker)
    await member.start()
    await attacker.start()
    for (const n of nodes) n.pubsub.subscribe(TOPIC)
    const delivered: Array<{ from: string, seqno: bigint, data: string }> = []
    receiver.pubsub.addEventListener('message', (event) => {
      const m = event.detail
      if (m.topic === TOPIC && m.type === 'signed') delivered.push({ from: m.from.toString(), seqno: m.sequenceNumber, data: new TextDecoder().decode(m.data) })
    })
    await waitFor(() => [member, attacker].every((n) => receiver.pubsub.getSubscribers(TOPIC).some((p) => p.equals(n.peerId))), 'both subscribed at the receiver')
    // and the member knows the receiver's subscription: published before that, its first message
    // goes to no one (in a loaded suite run this wait ran out at 15 s)
    await waitFor(() => member.pubsub.getSubscribers(TOPIC).some((p) => p.equals(receiver.peerId)), 'the receiver subscribed at the member')

    await member.pubsub.publish(TOPIC, text('first'))
    await waitFor(() => delivered.length === 1, 'the member\'s first message')
    const next = delivered[0].seqno + 1n
    const memberId = member.peerId.toMultihash().bytes

    // on a gossipsub stream of its own: the member's next sequence number with a wrong
    // signature, then (also the barrier) a message the attacker signs as itself with that same
    // sequence number: an id without the origin would take it for the member's message
    const stream = await attacker.libp2p.dialProtocol(receiver.peerId, '/meshsub/1.1.0')
    const forged = { from: memberId, seqno: seqnoBytes(next), data: text('forged'), topic: TOPIC, signature: new Uint8Array(64).fill(7) }
    /** a message the attacker signs as itself: what it sends after a test message, as a barrier */
    const barrier = async (data: string, seqno: bigint): Promise<RPC.Message> => {
      const message = { from: attacker.peerId.toMultihash().bytes, seqno: seqnoBytes(seqno), data: text(data), topic: TOPIC }
      return { ...message, signature: await attackerKey.sign(new Uint8Array([...SIGN_PREFIX, ...RPC.Message.encode(message)])) }
    }
    stream.send(frame(RPC.encode({ subscriptions: [], messages: [forged] })))
    stream.send(frame(RPC.encode({ subscriptions: [], messages: [await barrier('barrier 1', next)] })))
    await waitFor(() => delivered.some((m) => m.data === 'barrier 1'), 'the attacker\'s own signed message after the forged one')

    // the genuine message with that sequence number
    await member.pubsub.publish(TOPIC, text('second'))
    await waitFor(() => delivered.some((m) => m.data === 'second'), 'the member\'s genuine second message')
    expect(delivered.find((m) => m.data === 'second')?.seqno).toBe(next)

    // a copy of the accepted message with other data: a duplicate, not delivered
    stream.send(frame(RPC.encode({ subscriptions: [], messages: [{ ...forged, data: text('copy') }] })))
    stream.send(frame(RPC.encode({ subscriptions: [], messages: [await barrier('barrier 2', next + 1n)] })))
    await waitFor(() => delivered.some((m) => m.data === 'barrier 2'), 'the attacker\'s own signed message after the copy')
    expect(delivered.map((m) => m.data)).toEqual(['first', 'barrier 1', 'second', 'barrier 2'])
  })
})
