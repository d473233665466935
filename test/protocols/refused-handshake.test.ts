/**
 * Inbound connections refused by their handshake are seen: bytes that are not libp2p and a peer
 * with another pre-shared key are each counted as 'handshake-failed' by the listening node (and
 * logged, rate-limited); a peer with the right key that connects and leaves is not.
 */
import { connect } from 'node:net'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { afterEach, describe, expect, it } from 'vitest'
import { createPeerNode, createPsk, type PeerNode } from '../../protocols/node/index.js'

const LOOPBACK = '/ip4/127.0.0.1/tcp/0'
const nodes: PeerNode[] = []
afterEach(async () => { await Promise.all(nodes.splice(0).map(async (n) => { await n.stop() })) })

async function startNode(psk: Uint8Array): Promise<PeerNode> {
  const node = await createPeerNode({ privateKey: await generateKeyPair('Ed25519'), listen: [LOOPBACK], psk })
  nodes.push(node)
  await node.start()
  return node
}

async function until(check: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

describe('refused handshakes', () => {
  it('counts garbage and a wrong pre-shared key as handshake-failed, and a good peer not at all', async () => {
    const psk = createPsk()
    const host = await startNode(psk)
    const [ip, , port] = host.dialableAddrs()[0].split('/').slice(2)
    const failed = (): number => host.refusedConnections()['handshake-failed'] ?? 0

    // bytes that are not libp2p
    const socket = connect(Number(port), ip)
    socket.on('error', () => {}) // the node resets it
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
    socket.end(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))
    await until(() => failed() === 1)

    // another pre-shared key
    const stranger = await startNode(createPsk())
    expect(await stranger.connectTo(host.peerId.toString(), host.dialableAddrs())).toBe(false)
    await until(() => failed() >= 2)
    const afterStranger = failed()

    // the right key: connects, and leaving is no refusal
    const friend = await startNode(psk)
    expect(await friend.connectTo(host.peerId.toString(), host.dialableAddrs())).toBe(true)
    await friend.stop()
    await new Promise((resolve) => setTimeout(resolve, 500))
    expect(failed()).toBe(afterStranger)
    expect(host.refusedConnections()['not-allowlisted'] ?? 0).toBe(0)
  }, 30_000)

  it('refuses a key file that is not one, saying what one holds and how to make it', async () => {
    const error = await createPeerNode({ privateKey: await generateKeyPair('Ed25519'), listen: [LOOPBACK], psk: new TextEncoder().encode('garbage\n') }).then(() => undefined, (e: unknown) => e)
    // it said to call createPsk(), pnet's JavaScript function
    expect((error as Error).message).toMatch(/^the private network key is invalid \(.*\): a key file holds three lines, \/key\/swarm\/psk\/1\.0\.0\/, \/base16\/ and 64 hex digits; make one with: printf '\/key\/swarm\/psk\/1\.0\.0\/\\n\/base16\/\\n%s\\n' "\$\(openssl rand -hex 32\)" > swarm\.key$/)
  })
})
