import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import type { Libp2p } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import type { TrainingSnapshot } from '../../protocols/snapshot/index.js'

export async function createLoopbackNode (): Promise<Libp2p> {
  return createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()]
  })
}

/** deterministic float bit patterns (NaN payloads included), cheap enough for tens of millions */
export function patternFloats (n: number, seed: number): Float32Array {
  const bits = new Uint32Array(n)
  let x = (seed * 2654435761) >>> 0 || 1
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    bits[i] = x
  }
  return new Float32Array(bits.buffer)
}

export function sameBits (a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))
}

export function makeSnapshot (paramCount: number, optimizerCount: number, step = 10): TrainingSnapshot {
  return {
    jobConfig: { id: 'job-1', model: { name: 'mlp' } },
    step,
    epoch: 1,
    cursor: 320,
    meta: { lr: 0.01, members: ['a', 'b', 'c'] },
    params: patternFloats(paramCount, 1),
    optimizerState: patternFloats(optimizerCount, 2)
  }
}
