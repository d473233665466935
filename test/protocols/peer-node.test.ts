import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { afterEach, describe, expect, it } from 'vitest'
import {
  closedByPeer, createPeerNode, createPsk, describeDialFailure, InvalidMultiaddrError, PEER_CLOSED_HINT, loadOrCreatePeerKey, PeerKeyError, PeerNodeError, peerKeyPath, type PeerNode
} from '../../protocols/node/index.js'
import { captureLogs, LOOPBACK, newNode, waitFor } from './peer-helpers.js'

const nodes: PeerNode[] = []
const dirs: string[] = []
async function track (node: Promise<PeerNode>): Promise<PeerNode> {
  const n = await node
  nodes.push(n)
  return n
}

afterEach(async () => {
  await Promise.all(nodes.splice(0).map(async (n) => { await n.stop() }))
  await Promise.all(dirs.splice(0).map(async (d) => { await rm(d, { recursive: true, force: true }) }))
})

/** can `a` open a connection to `b`? (either side may refuse) */
async function canConnect (a: PeerNode, b: PeerNode): Promise<boolean> {
  const ok = await a.connectTo(b.peerId.toString(), b.dialableAddrs())
  if (!ok) return false
  // a gater on the far side closes the connection right after the handshake: give it a moment
  await new Promise((resolve) => setTimeout(resolve, 300))
  return a.connectedPeers().includes(b.peerId.toString()) && b.connectedPeers().includes(a.peerId.toString())
}

describe('peer identity', () => {
  it('keeps the peer id across restarts with the same data dir, in a 0600 file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'p2pmld-key-'))
    dirs.push(dir)
    const first = await track(createPeerNode({ privateKey: await loadOrCreatePeerKey(dir), listen: [LOOPBACK] }))
    await first.start()
    const id = first.peerId.toString()
    await first.stop()
    expect((await stat(peerKeyPath(dir))).mode & 0o777).toBe(0o600)
    const second = await track(createPeerNode({ privateKey: await loadOrCreatePeerKey(dir), listen: [LOOPBACK] }))
    await second.start()
    expect(second.peerId.toString()).toBe(id)
    expect(second.dialableAddrs()[0]).toMatch(new RegExp(`^/ip4/127\\.0\\.0\\.1/tcp/\\d+/p2p/${id}$`))

    const other = await mkdtemp(join(tmpdir(), 'p2pmld-key-'))
    dirs.push(other)
    expect((await loadOrCreatePeerKey(other)).publicKey.toString()).not.toBe((await loadOrCreatePeerKey(dir)).publicKey.toString())
  })

  it('refuses a corrupt key file with a typed error instead of silently changing identity', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'p2pmld-key-'))
    dirs.push(dir)
    await writeFile(peerKeyPath(dir), new Uint8Array([1, 2, 3]))
    await expect(loadOrCreatePeerKey(dir)).rejects.toThrow(PeerKeyError)
  })
})

describe('bootstrap', () => {
  it('names an invalid bootstrap address in a typed error', async () => {
    const key = await generateKeyPair('Ed25519')
    const attempt = createPeerNode({ privateKey: key, listen: [LOOPBACK], bootstrap: ['/ip4/127.0.0.1/tcp/4001', 'not-a-multiaddr'] })
    await expect(attempt).rejects.toThrow(InvalidMultiaddrError)
    await expect(attempt).rejects.toThrow(/bootstrap address 'not-a-multiaddr'/)
    await expect(createPeerNode({ privateKey: key, listen: ['/ip4/999.1.1.1/tcp/0'] })).rejects.toThrow(/listen address/)
  })

  it('survives an unreachable bootstrap peer, logs it and retries with growing delays', async () => {
    // a port nothing listens on: bind one, note it, close it
    const probe = await newNode()
    await probe.start()
    const deadAddr = probe.dialableAddrs()[0]
    await probe.stop()

    const { logger, records } = captureLogs()
    const node = await track(newNode({ bootstrap: [deadAddr], logger, bootstrapInitialDelayMs: 50, bootstrapMaxDelayMs: 400 }))
    await node.start()
    const failures = (): typeof records => records.filter((r) => r.msg.startsWith('cannot reach bootstrap peer'))
    await waitFor(() => failures().length >= 4, '4 logged bootstrap failures')
    const delays = failures().map((r) => r.retryInMs as number)
    expect(delays.slice(0, 4)).toEqual([50, 100, 200, 400])
    expect(failures().every((r) => r.component === 'peer-node' && r.address === deadAddr)).toBe(true)
    // the node still works: another peer can connect to it
    const other = await track(newNode())
    await other.start()
    expect(await canConnect(other, node)).toBe(true)
  })
})

describe('what a failed dial tells people', () => {
  it('unreachable names the address; out of time names the key, the allowlist and the address; closed names the key and the allowlist', () => {
    expect(describeDialFailure(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:4001'), { code: 'ECONNREFUSED' }))).toMatch(/^cannot reach bootstrap peer; retrying \(check the address/)
    // a private network with another key leaves the handshake unanswered until the dial times out
    const timedOut = describeDialFailure(Object.assign(new Error('The operation was aborted due to timeout'), { name: 'TimeoutError' }))
    expect(timedOut).toMatch(/^no answer from the bootstrap peer in time/)
    expect(timedOut).toMatch(/--psk-file.*allowlist.*address/)
    expect(describeDialFailure(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }))).toBe(`${PEER_CLOSED_HINT}; retrying`)
  })

  it('a handshake garbled by another pre-shared key counts as the peer refusing: the joiner names the key (a trial read only "Message length too long - 6329 > 1024")', () => {
    for (const message of ['Message length too long - 6329 > 1024', 'Message length length too long - 6 > 2']) {
      expect(closedByPeer(new Error(message)), message).toBe(true)
    }
    expect(closedByPeer(new Error('the job waits to start'))).toBe(false)
  })
})

describe('private network and allowlist', () => {
  it('a peer with another PSK cannot connect, one with the same PSK can', async () => {
    const psk = createPsk()
    const a = await track(newNode({ psk }))
    const b = await track(newNode({ psk }))
    const stranger = await track(newNode({ psk: createPsk() }))
    const open = await track(newNode())
    for (const n of [a, b, stranger, open]) await n.start()
    expect(await canConnect(b, a)).toBe(true)
    expect(await canConnect(stranger, a)).toBe(false)
    expect(await canConnect(open, a)).toBe(false)
    expect(a.connectedPeers()).toEqual([b.peerId.toString()])
  })

  it('rejects a malformed PSK with a typed error', async () => {
    await expect(newNode({ psk: new Uint8Array(10) })).rejects.toThrow(PeerNodeError)
  })

  it('a peer not on the allowlist cannot connect, in either direction', async () => {
    const friend = await track(newNode())
    const stranger = await track(newNode())
    await friend.start()
    await stranger.start()
    const guarded = await track(newNode({ allowlist: [friend.peerId.toString()] }))
    await guarded.start()
    expect(await canConnect(stranger, guarded)).toBe(false)
    expect(await canConnect(guarded, stranger)).toBe(false)
    expect(await canConnect(friend, guarded)).toBe(true)
    expect(guarded.connectedPeers()).toEqual([friend.peerId.toString()])
    await expect(newNode({ allowlist: ['nope'] })).rejects.toThrow(/allowlist entry 'nope'/)
  })
})

describe('lifecycle', () => {
  it('start and stop are idempotent and stop closes every connection', async () => {
    const a = await track(newNode())
    const b = await track(newNode())
    await a.start()
    await a.start()
    await b.start()
    expect(await canConnect(a, b)).toBe(true)
    await a.stop()
    await a.stop()
    expect(a.isStarted()).toBe(false)
    await waitFor(() => b.connectedPeers().length === 0, 'b to see the connection close')
  })
})
