/**
 * One JSON request over a libp2p stream (protocols/request/json-request.ts): a reply that cannot
 * be written because the requester hung up (it gave up waiting) is no rejection; a handler that
 * throws is one ('refused'), counted once. (16 busy daemons logged every hung-up reply twice,
 * as 'refused' and as 'unreadable'.)
 */
import { afterEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { handleJsonRequests, requestJson } from '../../protocols/request/json-request.js'
import type { PeerNode } from '../../protocols/node/index.js'
import { newNode, waitFor } from './peer-helpers.js'

const PROTOCOL = '/p2pmld/test-json/1.0.0'

describe('JSON requests', () => {
  const nodes: PeerNode[] = []
  afterEach(async () => { await Promise.all(nodes.splice(0).map(async (n) => { await n.stop() })) })

  it('counts a refusal once and a requester that hung up not at all', async () => {
    const server = await newNode()
    const client = await newNode()
    nodes.push(server, client)
    await server.start()
    await client.start()
    const rejections: string[] = []
    let answered = 0
    await handleJsonRequests(server.libp2p, PROTOCOL, z.object({ delayMs: z.number(), fail: z.boolean() }), async (request) => {
      await new Promise((resolve) => setTimeout(resolve, request.delayMs))
      answered++
      if (request.fail) throw new Error('no such job')
      return { fine: true }
    }, { onRejected: (reason) => { rejections.push(reason) } })
    const target = server.libp2p.getMultiaddrs()[0]

    await expect(requestJson(client.libp2p, target, PROTOCOL, { delayMs: 0, fail: true }, z.object({ fine: z.boolean() }))).rejects.toThrow('no such job')
    expect(rejections).toEqual(['refused'])

    // the client gives up after 100 ms; the server answers at 400 ms into a closed stream
    await expect(requestJson(client.libp2p, target, PROTOCOL, { delayMs: 400, fail: false }, z.object({ fine: z.boolean() }), { timeoutMs: 100 })).rejects.toThrow()
    await waitFor(() => answered === 2, 'the slow request answered')
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(rejections).toEqual(['refused'])
    expect(await requestJson(client.libp2p, target, PROTOCOL, { delayMs: 0, fail: false }, z.object({ fine: z.boolean() }))).toEqual({ fine: true })
  })
})
