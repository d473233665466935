import { describe, expect, it } from 'vitest'
import { createQsgdCodec } from '../../ml/compress/index.js'
import { createRng } from '../../ml/core/rng.js'
import {
  decodeGradientMessage, decodeMembershipMessage, encodeGradientMessage, encodeMembershipMessage,
  GRADIENT_HEADER_BYTES, MessageEncodeError, parameterDigest, SLICE_HEADER_BYTES, type GradientMessage
} from '../../protocols/messages/index.js'

const SENDER = '12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf'

function makeMessage (over: Partial<GradientMessage> = {}): GradientMessage {
  const params = new Float32Array(1000).map((_, i) => Math.sin(i))
  const gradient = new Float32Array(1000).map((_, i) => Math.cos(i) * 0.01)
  const payload = createQsgdCodec({ bits: 8, bucketSize: 512 }).encode(gradient, createRng(3))
  return { jobId: 'job-a', step: 7, epoch: 2, sender: SENDER, codec: 'qsgd', parameterCount: 1000, digest: parameterDigest(params), payload, ...over }
}

describe('gradient message codec', () => {
  it('round-trips every field, with and without an epoch', () => {
    const msg = makeMessage()
    const bytes = encodeGradientMessage(msg)
    const decoded = decodeGradientMessage(bytes, { jobId: 'job-a', parameterCount: 1000, codec: 'qsgd', payloadBytes: msg.payload.length })
    expect(decoded.ok).toBe(true)
    if (!decoded.ok) return
    expect(decoded.value.step).toBe(7)
    expect(decoded.value.epoch).toBe(2)
    expect(decoded.value.sender).toBe(SENDER)
    expect(decoded.value.codec).toBe('qsgd')
    expect(Buffer.from(decoded.value.digest).equals(Buffer.from(msg.digest))).toBe(true)
    expect(Buffer.from(decoded.value.payload).equals(Buffer.from(msg.payload))).toBe(true)
    // the payload still decodes to the same gradient through ml/compress
    const codec = createQsgdCodec({ bits: 8, bucketSize: 512 })
    expect(codec.decode(decoded.value.payload, 1000)).toEqual(codec.decode(msg.payload, 1000))

    const noEpoch = decodeGradientMessage(encodeGradientMessage({ ...msg, epoch: undefined }), { jobId: 'job-a' })
    expect(noEpoch.ok && noEpoch.value.epoch).toBe(undefined)
  })

  it('round-trips a sliced (reduce-scatter) message; its payload size is not the whole vector\'s', () => {
    const msg = makeMessage({ payload: new Uint8Array([1, 2, 3, 4, 5]), slices: { phase: 'results', total: 16, first: 14, count: 3 } })
    const bytes = encodeGradientMessage(msg)
    expect(bytes.length).toBe(encodeGradientMessage(makeMessage({ payload: msg.payload })).length + SLICE_HEADER_BYTES)
    const decoded = decodeGradientMessage(bytes, { jobId: 'job-a', parameterCount: 1000, codec: 'qsgd', payloadBytes: 1012 })
    expect(decoded.ok).toBe(true)
    if (!decoded.ok) return
    expect(decoded.value.slices).toEqual({ phase: 'results', total: 16, first: 14, count: 3 })
    expect([...decoded.value.payload]).toEqual([1, 2, 3, 4, 5])
    expect(decodeGradientMessage(good, { jobId: 'job-a' }).ok && (decodeGradientMessage(good, { jobId: 'job-a' }) as { value: GradientMessage }).value.slices).toBe(undefined)
  })

  it('rejects a malformed slice header and refuses to encode one', () => {
    const sliced = encodeGradientMessage(makeMessage({ slices: { phase: 'parts', total: 4, first: 1, count: 3 } }))
    const at = GRADIENT_HEADER_BYTES + 'job-a'.length + SENDER.length
    const bad = (f: (b: Uint8Array, v: DataView) => void): string | undefined => {
      const b = sliced.slice()
      f(b, new DataView(b.buffer))
      const r = decodeGradientMessage(b, { jobId: 'job-a' })
      return r.ok ? undefined : `${r.reason}: ${r.detail}`
    }
    expect(bad((b) => { b[at] = 3 })).toMatch(/^malformed: slice phase 3/)
    expect(bad((_b, v) => { v.setUint16(at + 4, 4) })).toMatch(/^malformed: first slice 4/)
    expect(bad((_b, v) => { v.setUint16(at + 6, 0) })).toMatch(/^malformed: slice count 0/)
    expect(bad((_b, v) => { v.setUint16(at + 2, 0) })).toMatch(/^malformed: slice total 0/)
    const cut = decodeGradientMessage(sliced.subarray(0, at + 5), { jobId: 'job-a' })
    expect(cut.ok ? undefined : cut.reason).toBe('truncated')
    expect(() => encodeGradientMessage(makeMessage({ slices: { phase: 'parts', total: 4, first: 4, count: 1 } }))).toThrow(/first slice 4/)
    expect(() => encodeGradientMessage(makeMessage({ slices: { phase: 'parts', total: 70_000, first: 0, count: 1 } }))).toThrow(/slice total/)
  })

  it('digests parameters by their bytes', () => {
    const a = new Float32Array([1, 2, 3])
    expect(parameterDigest(a)).toHaveLength(32)
    expect(Buffer.from(parameterDigest(a)).toString('hex')).toBe(Buffer.from(parameterDigest(new Float32Array([1, 2, 3]))).toString('hex'))
    expect(Buffer.from(parameterDigest(a)).toString('hex')).not.toBe(Buffer.from(parameterDigest(new Float32Array([1, 2, 3.0000002]))).toString('hex'))
    // a view digests only its own elements
    const big = new Float32Array([9, 1, 2, 3, 9])
    expect(Buffer.from(parameterDigest(big.subarray(1, 4))).equals(Buffer.from(parameterDigest(a)))).toBe(true)
  })

  const good = encodeGradientMessage(makeMessage())
  const mutate = (f: (b: Uint8Array, v: DataView) => void): Uint8Array => {
    const b = good.slice()
    f(b, new DataView(b.buffer))
    return b
  }
  const cases: Array<[string, Uint8Array, string, object?]> = [
    ['empty', new Uint8Array(0), 'truncated'],
    ['random bytes', new Uint8Array(200).fill(7), 'magic'],
    ['future version', mutate((b) => { b[4] = 2 }), 'version'],
    ['header cut short', good.subarray(0, 40), 'truncated'],
    ['payload cut short', good.subarray(0, good.length - 1), 'truncated'],
    ['trailing bytes', new Uint8Array([...good, 0]), 'payload-length'],
    ['unknown flags', mutate((b) => { b[5] = 0x80 }), 'malformed'],
    ['reserved byte set', mutate((b) => { b[10] = 1 }), 'malformed'],
    ['unknown codec', mutate((b) => { b[6] = 9 }), 'codec'],
    ['zero-length job id', mutate((b) => { b[7] = 0 }), 'malformed'],
    ['absurd parameter count', mutate((_b, v) => { v.setUint32(20, 0xffffffff) }), 'too-large'],
    ['absurd payload length', mutate((_b, v) => { v.setUint32(24, 0xfffffff0) }), 'too-large'],
    ['declared payload longer than sent', mutate((_b, v) => { v.setUint32(24, v.getUint32(24) + 10) }), 'truncated'],
    ['wrong job', good, 'job-id', { jobId: 'job-b' }],
    ['wrong parameter count', good, 'parameter-count', { parameterCount: 999 }],
    ['wrong codec for the job', good, 'codec', { codec: 'fp16' }],
    ['wrong payload size for the job', good, 'payload-length', { payloadBytes: 12 }]
  ]
  for (const [name, bytes, reason, expect_] of cases) {
    it(`rejects ${name} as '${reason}'`, () => {
      const result = decodeGradientMessage(bytes, { jobId: 'job-a', ...expect_ })
      expect(result.ok).toBe(false)
      if (!result.ok) {
        expect(result.reason).toBe(reason)
        expect(result.detail.length).toBeGreaterThan(5)
      }
    })
  }

  it('survives every truncation and single-byte corruption without throwing', () => {
    for (let n = 0; n < GRADIENT_HEADER_BYTES + 80; n++) {
      const r = decodeGradientMessage(good.subarray(0, n), { jobId: 'job-a' })
      expect(r.ok).toBe(false)
    }
    const rng = createRng(11)
    for (let i = 0; i < 2000; i++) {
      const b = good.slice()
      b[rng.nextInt(GRADIENT_HEADER_BYTES + 60)] = rng.nextInt(256)
      expect(() => decodeGradientMessage(b, { jobId: 'job-a', parameterCount: 1000 })).not.toThrow()
    }
  })

  it('refuses to encode out-of-range fields', () => {
    expect(() => encodeGradientMessage(makeMessage({ step: -1 }))).toThrow(MessageEncodeError)
    expect(() => encodeGradientMessage(makeMessage({ digest: new Uint8Array(3) }))).toThrow(MessageEncodeError)
    expect(() => encodeGradientMessage(makeMessage({ jobId: '' }))).toThrow(MessageEncodeError)
    expect(() => encodeGradientMessage(makeMessage({ parameterCount: 10, payload: new Uint8Array(10_000) }))).toThrow(/too large/)
  })
})

describe('membership message codec', () => {
  const base = {
    type: 'heartbeat' as const, jobId: 'job-a', peerId: SENDER, addrs: [`/ip4/127.0.0.1/tcp/4001/p2p/${SENDER}`],
    step: 3, digest: 'ab'.repeat(32), state: 'training' as const
  }
  it('round-trips', () => {
    const r = decodeMembershipMessage(encodeMembershipMessage({ ...base, type: 'join', effectiveStep: 5 }), 'job-a')
    expect(r).toEqual({ ok: true, value: { v: 1, ...base, type: 'join', effectiveStep: 5 } })
  })
  it('rejects bad input with reasons', () => {
    const enc = (o: object): Uint8Array => new Uint8Array(Buffer.from(JSON.stringify(o)))
    const reasonOf = (b: Uint8Array, job = 'job-a'): string | undefined => { const r = decodeMembershipMessage(b, job); return r.ok ? undefined : r.reason }
    expect(reasonOf(new Uint8Array(Buffer.from('{not json')))).toBe('schema')
    expect(reasonOf(enc({ v: 2, ...base }))).toBe('version')
    expect(reasonOf(enc({ v: 1, ...base, step: -1 }))).toBe('schema')
    expect(reasonOf(enc({ v: 1, ...base, extra: 1 }))).toBe('schema')
    expect(reasonOf(enc({ v: 1, ...base, digest: 'xyz' }))).toBe('schema')
    expect(reasonOf(encodeMembershipMessage(base), 'job-b')).toBe('job-id')
    expect(reasonOf(new Uint8Array(9000))).toBe('too-large')
    expect(() => encodeMembershipMessage({ ...base, state: 'bogus' as 'idle' })).toThrow(MessageEncodeError)
  })
})
