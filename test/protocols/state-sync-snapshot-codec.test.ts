import { describe, expect, it } from 'vitest'
import { createRng } from '../../ml/core/rng.js'
import {
  SNAPSHOT_CHECKSUM_BYTES, SNAPSHOT_HEADER_BYTES, SnapshotError, createSnapshotDecoder, decodeSnapshot,
  encodeSnapshot, encodeSnapshotToBytes, type TrainingSnapshot
} from '../../protocols/snapshot/index.js'

function randomFloats (n: number, seed: number): Float32Array {
  const rng = createRng(seed)
  const out = new Float32Array(n)
  for (let i = 0; i < n; i++) out[i] = rng.nextNormal()
  return out
}

function sampleSnapshot (paramCount: number, optimizerCount: number, seed = 1): TrainingSnapshot {
  return {
    jobConfig: { id: 'job-a', model: { name: 'mlp' }, epochs: 3 },
    step: 1234,
    epoch: 2,
    cursor: 640,
    meta: { lr: 0.05, plateau: { best: 0.31, badEpochs: 1 }, members: ['peerA', 'peerB'], note: 'ünïcødé' },
    params: randomFloats(paramCount, seed),
    optimizerState: randomFloats(optimizerCount, seed + 1)
  }
}

function sameBits (a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length)
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length)
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false
  return true
}

async function expectSnapshotError (promise: Promise<unknown>, reason?: string): Promise<SnapshotError> {
  const error = await promise.then(() => undefined, (e: unknown) => e)
  expect(error).toBeInstanceOf(SnapshotError)
  if (reason !== undefined) expect((error as SnapshotError).reason).toBe(reason)
  return error as SnapshotError
}

/** split bytes at random cut points, so floats and headers straddle chunk boundaries */
function * randomSplit (bytes: Uint8Array, seed: number, maxPiece: number): Generator<Uint8Array> {
  const rng = createRng(seed)
  let offset = 0
  while (offset < bytes.byteLength) {
    const n = 1 + rng.nextInt(maxPiece)
    yield bytes.subarray(offset, offset + n)
    offset += n
  }
}

describe('snapshot codec', () => {
  it('round-trips a few-million-parameter snapshot bit-exactly, streaming in 1 MiB chunks', async () => {
    const snapshot = sampleSnapshot(3_000_000, 6_000_000)
    // NaN payloads, infinities and -0 must survive too
    snapshot.params[0] = Number.NaN
    snapshot.params[1] = -0
    snapshot.params[2] = Number.POSITIVE_INFINITY
    const encoded = encodeSnapshot(snapshot)
    expect(encoded.byteLength).toBeGreaterThan(9_000_000 * 4)
    let total = 0
    let largest = 0
    const chunks: Uint8Array[] = []
    for (const chunk of encoded.chunks) {
      total += chunk.byteLength
      largest = Math.max(largest, chunk.byteLength)
      chunks.push(chunk)
    }
    expect(total).toBe(encoded.byteLength)
    expect(largest).toBeLessThanOrEqual(1024 * 1024)
    // float chunks are views into the caller's arrays, not copies
    expect(chunks.some((c) => c.buffer === snapshot.params.buffer)).toBe(true)

    const decoded = await decodeSnapshot((async function * () { yield * chunks })())
    expect(decoded.step).toBe(1234)
    expect(decoded.epoch).toBe(2)
    expect(decoded.cursor).toBe(640)
    expect(decoded.meta).toEqual(snapshot.meta)
    expect(decoded.jobConfig).toEqual(snapshot.jobConfig)
    expect(sameBits(decoded.params, snapshot.params)).toBe(true)
    expect(sameBits(decoded.optimizerState, snapshot.optimizerState)).toBe(true)
    expect(Object.is(decoded.params[1], -0)).toBe(true)
  })

  it('round-trips an empty optimizer state and empty params, whatever the chunking', async () => {
    for (const [p, o] of [[1000, 0], [0, 0], [0, 17]]) {
      const snapshot = sampleSnapshot(p, o, 7)
      const bytes = encodeSnapshotToBytes(snapshot)
      const jsonLength = new DataView(bytes.buffer).getUint32(8, true)
      expect(bytes.byteLength).toBe(SNAPSHOT_HEADER_BYTES + jsonLength + 4 * (p + o) + SNAPSHOT_CHECKSUM_BYTES)
      const decoded = await decodeSnapshot(randomSplit(bytes, p + o, 37))
      expect(decoded.optimizerState.length).toBe(o)
      expect(sameBits(decoded.params, snapshot.params)).toBe(true)
      expect(sameBits(decoded.optimizerState, snapshot.optimizerState)).toBe(true)
    }
  })

  it('rejects invalid snapshots before producing bytes', () => {
    const good = sampleSnapshot(4, 0)
    expect(() => encodeSnapshot({ ...good, step: -1 })).toThrow(SnapshotError)
    expect(() => encodeSnapshot({ ...good, cursor: 1.5 })).toThrow(/cursor/)
    expect(() => encodeSnapshot({ ...good, meta: [] as unknown as Record<string, unknown> })).toThrow(/meta/)
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    expect(() => encodeSnapshot({ ...good, meta: cyclic })).toThrow(/JSON/)
    expect(() => encodeSnapshot(good, { chunkBytes: 6 })).toThrow(/multiple of 4/)
  })

  it('detects a flipped bit anywhere by the checksum (or by the header/JSON checks)', async () => {
    const bytes = encodeSnapshotToBytes(sampleSnapshot(5000, 5000))
    const rng = createRng(99)
    const positions = [SNAPSHOT_HEADER_BYTES + 5, bytes.byteLength - 1, bytes.byteLength - 40, 40_000]
    for (let i = 0; i < 20; i++) positions.push(rng.nextInt(bytes.byteLength))
    for (const pos of positions) {
      const corrupt = bytes.slice()
      corrupt[pos] ^= 1 << rng.nextInt(8)
      await expectSnapshotError(decodeSnapshot([corrupt]))
    }
    const floatPos = bytes.slice()
    floatPos[bytes.byteLength - 100] ^= 0x10
    await expectSnapshotError(decodeSnapshot([floatPos]), 'checksum-mismatch')
  })

  it('rejects truncation at every kind of boundary, and trailing bytes', async () => {
    const bytes = encodeSnapshotToBytes(sampleSnapshot(100, 50))
    for (const cut of [0, 3, SNAPSHOT_HEADER_BYTES - 1, SNAPSHOT_HEADER_BYTES, SNAPSHOT_HEADER_BYTES + 10, bytes.byteLength - 300, bytes.byteLength - SNAPSHOT_CHECKSUM_BYTES, bytes.byteLength - 1]) {
      await expectSnapshotError(decodeSnapshot([bytes.subarray(0, cut)]), 'truncated')
    }
    const longer = new Uint8Array(bytes.byteLength + 1)
    longer.set(bytes)
    await expectSnapshotError(decodeSnapshot([longer]), 'trailing-bytes')
  })

  it('refuses wrong magic, unknown versions and sizes over the limits before allocating', async () => {
    const bytes = encodeSnapshotToBytes(sampleSnapshot(10, 0))
    const magic = bytes.slice(); magic[0] = 0x58
    await expectSnapshotError(decodeSnapshot([magic]), 'bad-magic')
    const version = bytes.slice(); new DataView(version.buffer).setUint32(4, 2, true)
    await expectSnapshotError(decodeSnapshot([version]), 'unsupported-version')
    const huge = bytes.slice(); new DataView(huge.buffer).setBigUint64(16, 2n ** 62n, true)
    const error = await expectSnapshotError(decodeSnapshot([huge]), 'too-large')
    expect(error.message).toMatch(/limit/)
    const hugeJson = bytes.slice(); new DataView(hugeJson.buffer).setUint32(8, 0xffffffff, true)
    await expectSnapshotError(decodeSnapshot([hugeJson]), 'too-large')
    await expectSnapshotError(decodeSnapshot([bytes], { maxBytes: bytes.byteLength - 1 }), 'too-large')
    await expect(decodeSnapshot([bytes], { maxBytes: bytes.byteLength })).resolves.toBeDefined()
  })

  it('encodes without the sha256 trailer when asked (state sync), says so in the header, and decodes it unless a checksum is required (files)', async () => {
    const snapshot = sampleSnapshot(1000, 500, 9)
    const withTrailer = encodeSnapshotToBytes(snapshot)
    const parts = [...encodeSnapshot(snapshot, { checksum: false, chunkBytes: 256 }).chunks]
    const without = new Uint8Array(parts.reduce((sum, p) => sum + p.byteLength, 0))
    parts.reduce((at, p) => { without.set(p, at); return at + p.byteLength }, 0)
    expect(without.byteLength).toBe(withTrailer.byteLength - SNAPSHOT_CHECKSUM_BYTES)
    expect(encodeSnapshot(snapshot, { checksum: false }).byteLength).toBe(without.byteLength)
    expect(new DataView(without.buffer).getUint32(12, true)).toBe(1)
    // the same bytes up to the trailer, but for the flag
    const flagged = withTrailer.slice(0, without.byteLength); flagged[12] = 1
    expect(Buffer.from(flagged).equals(Buffer.from(without))).toBe(true)
    const decoded = await decodeSnapshot(randomSplit(without, 4, 700))
    expect(sameBits(decoded.params, snapshot.params) && sameBits(decoded.optimizerState, snapshot.optimizerState)).toBe(true)
    expect(decoded.step).toBe(snapshot.step)
    await expectSnapshotError(decodeSnapshot([without], { requireChecksum: true }), 'bad-header')
    await expect(decodeSnapshot([withTrailer], { requireChecksum: true })).resolves.toBeDefined()
    // a trailer after a header that announces none is trailing bytes; unknown flags are refused
    await expectSnapshotError(decodeSnapshot([flagged, withTrailer.subarray(without.byteLength)]), 'trailing-bytes')
    const unknownFlag = without.slice(); unknownFlag[12] = 3
    const error = await expectSnapshotError(decodeSnapshot([unknownFlag]), 'bad-header')
    expect(error.message).toMatch(/unknown flags 0x3/)
  })

  it('rejects JSON parts that are not the expected shape', async () => {
    const good = encodeSnapshotToBytes(sampleSnapshot(2, 0))
    const jsonLength = new DataView(good.buffer).getUint32(8, true)
    const json = new TextDecoder().decode(good.subarray(SNAPSHOT_HEADER_BYTES, SNAPSHOT_HEADER_BYTES + jsonLength))
    // same length, different content: step becomes a negative number
    const bad = json.replace('"step":1234', '"step":-123')
    expect(bad.length).toBe(json.length)
    const bytes = good.slice()
    bytes.set(new TextEncoder().encode(bad), SNAPSHOT_HEADER_BYTES)
    await expectSnapshotError(decodeSnapshot([bytes]), 'bad-json')
  })

  it('fuzz: random, mutated, truncated and huge-length inputs only ever throw SnapshotError', async () => {
    const base = encodeSnapshotToBytes(sampleSnapshot(64, 32))
    const rng = createRng(2024)
    let accepted = 0
    for (let round = 0; round < 3000; round++) {
      let input: Uint8Array
      const kind = round % 4
      if (kind === 0) {
        input = new Uint8Array(rng.nextInt(200))
        for (let i = 0; i < input.length; i++) input[i] = rng.nextInt(256)
      } else if (kind === 1) {
        input = base.slice()
        for (let k = 0; k <= rng.nextInt(4); k++) input[rng.nextInt(input.length)] = rng.nextInt(256)
      } else if (kind === 2) {
        input = base.slice(0, rng.nextInt(base.length))
      } else {
        input = base.slice()
        const view = new DataView(input.buffer)
        const field = [8, 16, 24][rng.nextInt(3)]
        if (field === 8) view.setUint32(8, rng.nextUint32(), true)
        else view.setBigUint64(field, BigInt(rng.nextUint32()) * BigInt(rng.nextUint32() + 1), true)
      }
      const decoder = createSnapshotDecoder({ maxBytes: 1 << 20 })
      try {
        for (const piece of randomSplit(input, round, 50)) decoder.push(piece)
        decoder.finish()
        accepted++
      } catch (error) {
        if (!(error instanceof SnapshotError)) throw new Error(`round ${round}: non-typed error ${String(error)}`)
      }
    }
    // only unmodified inputs (a mutation that rewrote a byte to itself) may decode
    expect(accepted).toBeLessThan(300)
  })
})
