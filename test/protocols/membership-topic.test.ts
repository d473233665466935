import { afterEach, describe, expect, it } from 'vitest'
import { createMembershipTopic, MembershipError, membershipTopic } from '../../protocols/membership-topic.js'
import type { PeerNode } from '../../protocols/node/index.js'
import { captureLogs, newNode, stopAll, waitFor } from './peer-helpers.js'

const nodes: PeerNode[] = []
afterEach(async () => { await stopAll(nodes.splice(0)) })

describe('membership topic', () => {
  it('survives a heartbeat builder that throws, refuses to speak for another peer, and stops cleanly', async () => {
    const node = await newNode()
    nodes.push(node)
    await node.start()
    const { logger, records } = captureLogs()
    let calls = 0
    const topic = createMembershipTopic({
      node,
      jobId: 'job-m',
      logger,
      heartbeat: { intervalMs: 20, build: () => { calls++; throw new Error('no state yet') } }
    })
    await topic.start()
    await topic.start()
    expect(node.pubsub.getTopics()).toEqual([membershipTopic('job-m')])
    await waitFor(() => records.filter((r) => r.msg === 'could not publish heartbeat' && r.component === 'membership').length >= 3, 'logged heartbeat failures')
    await expect(topic.publish({ type: 'leave', jobId: 'job-m', peerId: '12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf', addrs: [], step: 0, digest: '00'.repeat(32), state: 'leaving' }))
      .rejects.toThrow(MembershipError)
    await topic.stop()
    await topic.stop()
    expect(node.pubsub.getTopics()).toEqual([])
    const after = calls
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(calls).toBe(after)
  })
})
