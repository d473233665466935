import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { loadDaemonConfig } from '../../config/load.js'
import { OffloadConfigSchema } from '../../config/offload-config.js'

describe('offload setting', () => {
  it('takes the mode alone (flag, env) or a full object (config file), with defaults', () => {
    expect(loadDaemonConfig({ flags: { offload: 'pool' }, env: {} }).offload).toEqual({ mode: 'pool', threadsPerWorker: 1, minMicroBatchSize: 16 })
    expect(loadDaemonConfig({ env: { P2PMLD_OFFLOAD: 'none' } }).offload).toEqual({ mode: 'none' })
    expect(loadDaemonConfig({ env: {} }).offload).toBeUndefined()
    const sfn = OffloadConfigSchema.parse({ mode: 'stepfunctions', bucket: 'my-bucket', roleArn: 'arn:aws:iam::1:role/x' })
    expect(sfn).toMatchObject({ functionName: 'p2pmld-gradient', prefix: 'p2pmld/', type: 'EXPRESS', microBatches: 4, retry: { attempts: 3, intervalSeconds: 1, backoffRate: 2 } })
  })

  it('names the bad field and what to write', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'p2pmld-offload-config-'))
    try {
      const file = join(dir, 'peer.yaml')
      await writeFile(file, 'offload: { mode: stepfunctions, bucket: My_Bucket }\n')
      let message = ''
      try {
        loadDaemonConfig({ configFile: file, env: {} })
      } catch (error) {
        message = (error as Error).message
      }
      expect(message).toMatch(/offload\.bucket: an S3 bucket name/)
      await writeFile(file, 'offload: { mode: stepfunctions, bucket: my-bucket }\n')
      expect(() => loadDaemonConfig({ configFile: file, env: {} })).toThrow(/offload\.roleArn: give roleArn/)
      expect(() => loadDaemonConfig({ flags: { offload: 'gpu' }, env: {} })).toThrow(/--offload/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
