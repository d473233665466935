import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { describe, expect, it } from 'vitest'
import { EnvelopeError, openEnvelope, sealEnvelope } from '../../protocols/amqp/index.js'

describe('signed broker envelopes', () => {
  it('round-trip header and body, and name the authenticated sender', async () => {
    const key = await generateKeyPair('Ed25519')
    const from = peerIdFromPrivateKey(key).toString()
    const body = new Uint8Array(1000).map((_, i) => i % 251)
    const sealed = await sealEnvelope(key, { kind: 'gradient', job: 'j1', from, extra: 7 }, body)
    const opened = await openEnvelope(sealed)
    expect(opened.header).toEqual({ kind: 'gradient', job: 'j1', from, extra: 7 })
    expect([...opened.body]).toEqual([...body])
  })

  it('reject a flipped byte anywhere, a forged sender and broken framing', async () => {
    const key = await generateKeyPair('Ed25519')
    const other = await generateKeyPair('Ed25519')
    const from = peerIdFromPrivateKey(key).toString()
    const sealed = await sealEnvelope(key, { kind: 'control', job: 'j1', from }, new Uint8Array([1, 2, 3]))
    for (const at of [20, sealed.byteLength - 70, sealed.byteLength - 1]) {
      const tampered = Buffer.from(sealed)
      tampered[at] ^= 1
      await expect(openEnvelope(tampered)).rejects.toThrow(EnvelopeError)
    }
    // signed by another key while claiming `from`: the broker cannot pass one peer off as another
    const forged = await sealEnvelope(other, { kind: 'control', job: 'j1', from }, new Uint8Array([1, 2, 3]))
    await expect(openEnvelope(forged)).rejects.toThrow(/bad signature/)
    await expect(openEnvelope(sealed.subarray(0, 40))).rejects.toThrow(/shorter|lengths/)
    const badMagic = Buffer.from(sealed)
    badMagic[0] = 0
    await expect(openEnvelope(badMagic)).rejects.toThrow(/magic/)
  })
})
