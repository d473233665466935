/**
 * One JSON request over a libp2p stream (protocols/request/json-request.ts): a reply that cannot
 * be written because the requester hung up (it gave up waiting) is no rejection; a handler that
 * throws is one ('refused'), counted once. (16 busy daemons logged every hung-up reply twice,
 * as 'refused' and as 'unreadable'.) A handler that holds its reply learns when the requester went
 * away (it gave up, or its process died): a coordinator holding a joiner's reply until the start
 * withdraws the admission then (admission-reply.ts). A stream reset before its request arrived
 * is the requester going away (a peer exiting at a job's end does it): an expected refusal, not
 * a warning.
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

  it('counts a stream reset before the request as expected (the requester went away), a cut-off frame as unreadable', async () => {
    const server = await newNode()
    const client = await newNode()
    nodes.push(server, client)
    await Promise.all([server.start(), client.start()])
    const rejections: Array<{ reason: string, message: string, expected: boolean }> = []
    await handleJsonRequests(server.libp2p, PROTOCOL, z.object({}), async () => ({ fine: true }), {
      onRejected: (reason, _remote, message, expected) => { rejections.push({ reason, message, expected }) }
    })
    const target = server.libp2p.getMultiaddrs()[0]

    // what a peer exiting at a job's end does to a request it had just opened
    const reset = await client.libp2p.dialProtocol(target, PROTOCOL)
    reset.abort(new Error('process exiting'))
    await waitFor(() => rejections.length === 1, 'the reset stream counted')
    expect(rejections[0]).toEqual({ reason: 'unreadable', message: 'the requester reset the stream before its request arrived', expected: true })

    // a frame whose length prefix promises more than the stream carries before it closes
    const cut = await client.libp2p.dialProtocol(target, PROTOCOL)
    cut.send(Uint8Array.from([100, 123, 34]))
    await cut.close()
    await waitFor(() => rejections.length === 2, 'the cut-off frame counted')
    expect(rejections[1].reason).toBe('unreadable')
    expect(rejections[1].expected).toBe(false)
  })

  it('tells a handler holding its reply that the requester went away: gave up, or its node died', async () => {
    const server = await newNode()
    const client = await newNode()
    const doomed = await newNode()
    nodes.push(server, client, doomed)
    await Promise.all([server.start(), client.start(), doomed.start()])
    const gone: Array<{ id: number, afterMs: number }> = []
    let held = 0
    await handleJsonRequests(server.libp2p, PROTOCOL, z.object({ id: z.number() }), async (request, _remote, requesterGone) => {
      const since = performance.now()
      held++
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 10_000)
        requesterGone.addEventListener('abort', () => { clearTimeout(timer); gone.push({ id: request.id, afterMs: performance.now() - since }); resolve() }, { once: true })
      })
      return { fine: true }
    })
    const target = server.libp2p.getMultiaddrs()[0]

    // the requester gives up after 300 ms: the handler hears of it at once, not at its own 10 s
    await expect(requestJson(client.libp2p, target, PROTOCOL, { id: 1 }, z.object({ fine: z.boolean() }), { timeoutMs: 300 })).rejects.toThrow()
    await waitFor(() => gone.length === 1, 'the handler told that requester 1 gave up')
    expect(gone[0].id).toBe(1)

    // a requester whose node stops while its request is held (its process died): the connection closes
    requestJson(doomed.libp2p, target, PROTOCOL, { id: 2 }, z.object({ fine: z.boolean() }), { timeoutMs: 20_000 }).catch(() => {})
    await waitFor(() => held === 2, 'request 2 held')
    await doomed.stop()
    await waitFor(() => gone.length === 2, 'the handler told that requester 2 went away')
    expect(gone[1].id).toBe(2)
    expect(gone[1].afterMs).toBeLessThan(5_000)

    // a reply written before the requester closes the stream is no abort
    const quick = await newNode()
    nodes.push(quick)
    await quick.start()
    let quickGone = false
    await handleJsonRequests(server.libp2p, `${PROTOCOL}-quick`, z.object({}), async (_request, _remote, requesterGone) => {
      requesterGone.addEventListener('abort', () => { quickGone = true })
      return { fine: true }
    })
    expect(await requestJson(quick.libp2p, target, `${PROTOCOL}-quick`, {}, z.object({ fine: z.boolean() }))).toEqual({ fine: true })
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(quickGone).toBe(false)
  })
})
