/**
 * Three peers train one job, each computing its gradients differently: peer-0 in a local worker
 * pool, peer-1 through Step Functions -> Lambda on the local stand-ins (the handler running from
 * the packaged zip), peer-2 in process. They reach the demo's accuracy bar with identical final
 * parameters, and the offloading peers report their offload sub-stages.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseJobConfig } from '../../config/job-config.js'
import { OffloadConfigSchema } from '../../config/offload-config.js'
import { createLambdaClient } from '../../functions/aws/clients.js'
import { ensureFunction } from '../../functions/aws/ensure-resources.js'
import { buildGradientPackage } from '../../functions/package.js'
import { accuracyOf, startCluster } from '../fault/cluster.js'
import { applyEnv, startAwsStandIns, type AwsStandIns } from '../support/aws-stand-ins/index.js'

let standIns: AwsStandIns
let restoreEnv: () => void

beforeAll(async () => {
  standIns = await startAwsStandIns({ concurrency: 2 })
  restoreEnv = applyEnv(standIns.env)
  const lambda = createLambdaClient()
  try {
    await ensureFunction(lambda, { name: 'p2pmld-gradient', zip: (await buildGradientPackage()).zip, roleArn: 'arn:aws:iam::000000000000:role/fn', timeoutSeconds: 60 })
  } finally {
    lambda.destroy()
  }
}, 180_000)

afterAll(async () => {
  restoreEnv?.()
  await standIns?.stop()
})

describe('three peers, three ways of computing gradients', () => {
  it('pool, stepfunctions and in-process peers train lenet5 to the same parameters', async () => {
    const job = parseJobConfig({
      id: 'offload-peers',
      model: 'lenet5',
      epochs: 2,
      batchSize: 32,
      trainSamples: 3072,
      optimizer: { type: 'sgd', lr: 0.02, momentum: 0.9 },
      compression: { codec: 'qsgd', bits: 8 },
      aggregation: { rule: 'trimmed-mean', f: 1 },
      minPeers: 3
    })
    const offloads = [
      OffloadConfigSchema.parse({ mode: 'pool', workers: 2, microBatches: 2, minMicroBatchSize: 8 }),
      OffloadConfigSchema.parse({ mode: 'stepfunctions', bucket: standIns.bucket, prefix: 'p2p/', roleArn: 'arn:aws:iam::000000000000:role/sm', microBatches: 2, minMicroBatchSize: 8 }),
      undefined
    ]
    const cluster = await startCluster({ peers: 3, job, peerOptions: (i) => ({ offload: offloads[i] }) })
    try {
      const stagesOf = (i: number): string[] => (cluster.daemons[i].session()?.runner()?.stages.summary() ?? []).map((s) => s.stage)
      const executionsBefore = standIns.stateMachines.executions()
      const peers = await cluster.finished()
      for (const peer of peers) expect(peer.failure, peer.name).toBeUndefined()
      // the demo's bar (test/p2p/four-peers.test.ts), on fewer samples
      for (const peer of peers) expect(accuracyOf(peer), peer.name).toBeGreaterThan(0.8)
      expect(new Set(peers.map((p) => p.result!.digest)).size).toBe(1)
      const steps = peers[0].reports.length
      expect(steps).toBe(2 * Math.floor(3072 / (3 * 32)))
      for (const r of peers[0].reports) expect(r.contributors).toHaveLength(3)
      // peer-1 ran one state machine execution per step; nothing fell back to local compute
      expect(standIns.stateMachines.executions() - executionsBefore).toBe(steps)
      for (const i of [0, 1]) expect(stagesOf(i)).toEqual(expect.arrayContaining(['compute', 'offload.upload', 'offload.invoke', 'offload.download', 'offload.combine']))
      expect(stagesOf(2).filter((s) => s.startsWith('offload.'))).toEqual([])
    } finally {
      await cluster.stop()
    }
  }, 420_000)
})
