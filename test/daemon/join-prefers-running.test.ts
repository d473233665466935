/**
 * A daemon joining through its bootstrap peers takes a job still going over a finished one: the
 * first peer asked may have finished its job (and run no other yet) while a later one runs the
 * job to join. A finished job is still taken when no peer asked runs another (its final state).
 * And it asks for admission only with the model the job's members train (JobInfo.model).
 * Real libp2p nodes on 127.0.0.1 answer the job protocol's 'info' (and count 'join's).
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Multiaddr } from '@multiformats/multiaddr'
import { afterEach, describe, expect, it } from 'vitest'
import { silentLogger } from '../../daemon/logger.js'
import { OnnxModelNotFoundError } from '../../ml/onnx/load-onnx-model.js'
import { createJobJoiner } from '../../daemon/peer/job-joiner.js'
import type { JobSession } from '../../daemon/peer/job-session.js'
import { JOB_PROTOCOL, JobRequestSchema } from '../../protocols/job/job-protocol.js'
import { createPeerNode, parseMultiaddr, type PeerNode } from '../../protocols/node/index.js'
import { handleJsonRequests } from '../../protocols/request/json-request.js'

describe('joining through the bootstrap peers', () => {
  const cleanups: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => {})
  })
  const startedNode = async (): Promise<PeerNode> => {
    const node: PeerNode = await createPeerNode({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] })
    await node.start()
    cleanups.push(async () => { await node.stop() })
    return node
  }
  /** join requests the answering nodes got */
  const joins: string[] = []
  /** a node answering 'info' for `jobId` in `phase`, coordinated by itself, training `model` (a JobInfo.model) */
  const answering = async (jobId: string, phase: 'training' | 'finished', model?: { parameters: number, layout: string }, configModel = 'mlp'): Promise<Multiaddr[]> => {
    const node = await startedNode()
    const id = node.peerId.toString()
    await handleJsonRequests(node.libp2p, JOB_PROTOCOL, JobRequestSchema, async (request, remote) => {
      if (request.type === 'join') {
        joins.push(remote.toString())
        throw new Error('not in this test')
      }
      return {
        jobId,
        config: { id: jobId, model: configModel },
        phase,
        step: 64,
        coordinator: { peerId: id, addrs: [] },
        membership: { version: 2, members: [{ peerId: id, joinStep: 0, leaveStep: null }] },
        ...(model === undefined ? {} : { model })
      }
    })
    return node.dialableAddrs().map((a) => parseMultiaddr(a))
  }
  /**
   * Joins through `bootstrap` until `done` says so (10 s at most): the jobs it opened sessions for,
   * in order, and where the join stood then. `session`: what the opened session is (default: it
   * refuses to open, not these tests' concern).
   */
  const joinUntil = async (bootstrap: Multiaddr[], done: (opened: string[], stage: string | undefined) => boolean, session?: Pick<JobSession, 'runtimeInfo'> | Error, joinJobId?: string): Promise<{ opened: string[], stage: string | undefined, notices: string[] }> => {
    const node = await startedNode()
    const opened: string[] = []
    const notices: string[] = []
    const joiner = createJobJoiner({
      node,
      log: silentLogger(),
      peerId: node.peerId.toString(),
      privateKey: await generateKeyPair('Ed25519'),
      bootstrapAddrs: bootstrap,
      session: () => undefined,
      openSession: async (jobId) => {
        opened.push(jobId)
        if (session === undefined) throw new Error('not in this test')
        if (session instanceof Error) throw session
        return session as JobSession
      },
      notice: (text) => notices.push(text),
      dropSession: async () => {},
      resume: async () => {},
      rememberMembers: async () => {},
      ...(joinJobId === undefined ? {} : { joinJobId })
    })
    cleanups.push(async () => { joiner.abort() })
    const joining = joiner.joinThroughBootstrap()
    const end = Date.now() + 10_000
    while (!done(opened, joiner.stage()) && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 50))
    const stage = joiner.stage()
    joiner.abort()
    await joining
    return { opened, stage, notices }
  }
  /** the job the joiner opens a session for first */
  const firstJobJoined = async (bootstrap: Multiaddr[]): Promise<string> => (await joinUntil(bootstrap, (opened) => opened.length > 0)).opened[0]

  it('takes the running job a later peer answers with, not the finished one the first peer names', async () => {
    const done = await answering('job-done', 'finished')
    const running = await answering('job-running', 'training')
    expect(await firstJobJoined([...done, ...running])).toBe('job-running')
  }, 30_000)

  it('told to join another job (--join-job): says the peer ran a finished job, not that it runs it', async () => {
    const { opened, stage } = await joinUntil(await answering('job-done', 'finished'), (_, at) => at?.includes('not job-wanted') === true, undefined, 'job-wanted')
    expect(opened).toEqual([])
    expect(stage).toMatch(/ran job job-done \(finished at step 64\), not job-wanted \(the job this daemon was told to join\)/)
  }, 30_000)

  it('takes the finished job when no peer runs another', async () => {
    expect(await firstJobJoined(await answering('job-done', 'finished'))).toBe('job-done')
  }, 30_000)

  it('does not ask for admission with a model other than the job\'s, and says why; with the same one it asks', async () => {
    const job = { parameters: 27_090, layout: 'a1b2c3d4e5f60718' }
    const other = { parameterCount: 1418, trainSamples: 100, layout: 'ffffffffffffffff' }
    const bootstrap = await answering('job-onnx', 'training', job, 'm.onnx')
    // two tries (the second after the back-off): still no join asked
    const refused = await joinUntil(bootstrap, (opened) => opened.length >= 2, { runtimeInfo: () => other })
    expect(refused.opened).toEqual(['job-onnx', 'job-onnx'])
    expect(joins).toEqual([])
    expect(refused.stage).toMatch(/this peer's model 'm\.onnx' \(a path is read on each peer, relative to its daemon's working directory: .*\) is not the one job job-onnx trains: 1418 parameters where the job's has 27090\. Every member needs the same model file at that path/)
    // on stdout once, not at each try (a joiner without the job's model file printed nothing but its start-up)
    expect(refused.notices).toEqual([expect.stringMatching(/^cannot join job job-onnx on this machine: this peer's model 'm\.onnx' .* is not the one job job-onnx trains: .*\(it tries again every few seconds; `p2pmld status` shows the last try\)$/)])
    // the same count in other shapes is refused too
    const reshaped = await joinUntil(bootstrap, (opened) => opened.length >= 1, { runtimeInfo: () => ({ ...other, parameterCount: 27_090 }) })
    expect(reshaped.stage).toMatch(/the same 27090 parameters in tensors of other shapes/)
    expect(joins).toEqual([])
    // the job's own model: the joiner asks the coordinator for admission
    await joinUntil(bootstrap, () => joins.length > 0, { runtimeInfo: () => ({ parameterCount: job.parameters, trainSamples: 100, layout: job.layout }) })
    expect(joins).toHaveLength(1)
  }, 40_000)

  it('says once on stdout that the job\'s model file is not on this machine; a failure the user cannot fix here only in status', async () => {
    const bootstrap = await answering('job-file', 'training', undefined, 'missing.onnx')
    // the loader's own fix ('use a zoo model name') is the submitter's, not a joiner's
    const missing = await joinUntil(bootstrap, (opened) => opened.length >= 2, new OnnxModelNotFoundError('ONNX model file \'missing.onnx\' does not exist: check the path, or use a zoo model name', { given: 'missing.onnx', resolved: '/srv/missing.onnx' }))
    expect(missing.notices).toEqual(['cannot join job job-file on this machine: the job\'s model file \'missing.onnx\' is not here (looked for /srv/missing.onnx): every member reads the job\'s model from its own disk, so copy the file there, or start this daemon in the directory that holds it (a relative path is read from the daemon\'s working directory) (it tries again every few seconds; `p2pmld status` shows the last try)'])
    const unreadable = await joinUntil(bootstrap, (opened) => opened.length >= 1, new OnnxModelNotFoundError('cannot read ONNX model file \'m.onnx\': EACCES'))
    expect(unreadable.notices).toEqual([expect.stringContaining('on this machine: cannot read ONNX model file \'m.onnx\': EACCES (it tries again')])
    const other = await joinUntil(bootstrap, (opened) => opened.length >= 2, new Error('the coordinator closed the stream'))
    expect(other.notices).toEqual([])
    expect(other.stage).toMatch(/the coordinator closed the stream/)
  }, 40_000)
})
