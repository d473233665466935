/**
 * A daemon with a broker and no bootstrap peer asks the broker for a job (daemon/peer/broker-join.ts).
 * When the broker refuses the connection, the answer names why (a user's status read "no answer
 * from the broker ... within 3000 ms" for a wrong password and for a port with no broker).
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { describe, expect, it } from 'vitest'
import { silentLogger } from '../../daemon/logger.js'
import { askBrokerForJob, BrokerUnreachableError } from '../../daemon/peer/broker-join.js'

const BROKER = process.env.P2PMLD_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672'

describe('asking the broker for a job', () => {
  for (const [what, url, cause] of [
    ['a wrong password', BROKER.replace(/\/\/([^:]+):[^@]+@/, '//$1:not-the-password@'), /ACCESS.REFUSED/],
    ['a port with no broker', 'amqp://guest:guest@127.0.0.1:1', /ECONNREFUSED/]
  ] as const) {
    it(`names the broker's refusal (${what}), not a missing answer, when the caller's deadline ends the try`, async () => {
      const key = await generateKeyPair('Ed25519')
      const error = await askBrokerForJob(url, key, peerIdFromPrivateKey(key).toString(), silentLogger(), { signal: AbortSignal.timeout(1_500) }).then(() => undefined, (e: unknown) => e as Error)
      expect(error).toBeInstanceOf(BrokerUnreachableError)
      expect(error?.message).toMatch(/^cannot reach the broker at 127\.0\.0\.1:\d+ \(\d+ tr(y|ies) failed, the last: .*\); check --amqp-url \(host, port, user and password\) and that the broker runs$/)
      expect(error?.message).toMatch(cause)
    })
  }
})
