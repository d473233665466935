/// <reference path="./modules.d.ts" />
/**
 * Local stand-ins for the AWS services the offload uses, on 127.0.0.1: S3 (s3rver) and one
 * endpoint for Lambda + Step Functions (server.ts). `env` holds what points the unchanged
 * production code (SDK v3 default chain) at them: region, fixed credentials, AWS_ENDPOINT_URL_*.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import S3rver from 's3rver'
import { createFunctionHost, type FunctionHost } from './function-host.js'
import { startStandInServer } from './server.js'
import { createStateMachineService, type StateMachineService } from './state-machines.js'

export const STAND_IN_REGION = 'us-east-1'
export const STAND_IN_ACCOUNT = '000000000000'

export interface AwsStandIns {
  /** environment for SDK clients (this process's and the functions') */
  readonly env: Record<string, string>
  readonly functions: FunctionHost
  readonly stateMachines: StateMachineService
  readonly bucket: string
  /** the S3 directory on disk (objects as files) */
  readonly s3Dir: string
  stop(): Promise<void>
}

export async function startAwsStandIns(options: { bucket?: string, concurrency?: number } = {}): Promise<AwsStandIns> {
  const bucket = options.bucket ?? 'p2pmld-test'
  const s3Dir = await mkdtemp(join(tmpdir(), 'p2pmld-s3-'))
  const s3 = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: s3Dir, configureBuckets: [{ name: bucket, configs: [] }] })
  const { port } = await s3.run() as AddressInfo
  const base = {
    AWS_REGION: STAND_IN_REGION,
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${port}`
  }
  const functions = await createFunctionHost({ env: base, concurrency: options.concurrency })
  const stateMachines = createStateMachineService(functions, STAND_IN_REGION, STAND_IN_ACCOUNT)
  const server = await startStandInServer(functions, stateMachines, STAND_IN_REGION, STAND_IN_ACCOUNT)
  const env = { ...base, AWS_ENDPOINT_URL_LAMBDA: server.endpoint, AWS_ENDPOINT_URL_SFN: server.endpoint }
  return {
    env,
    functions,
    stateMachines,
    bucket,
    s3Dir,
    async stop() {
      await server.stop()
      await functions.stop()
      await s3.close()
      await rm(s3Dir, { recursive: true, force: true })
    }
  }
}

/** Sets `env` on process.env and returns a function that restores the previous values. */
export function applyEnv(env: Record<string, string>): () => void {
  const previous = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]))
  Object.assign(process.env, env)
  return () => {
    for (const [k, v] of Object.entries(previous)) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  }
}
