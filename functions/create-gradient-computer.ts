/**
 * One GradientComputer per job from the peer's `offload` setting: in process (none), the local
 * worker pool, Lambda, or Step Functions -> Lambda. Every offloading computer keeps an in-process
 * one for evaluation and for micro-batches whose function keeps failing.
 */
import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { OffloadConfig } from '../config/offload-config.js'
import type { GradientComputer } from '../ml/core/types.js'
import { createOnnxGradientComputer } from '../ml/engine/onnx-gradient-computer.js'
import type { ModelDefinition } from '../ml/models/model-definition.js'
import { createOffloadComputer } from './offload/offload-computer.js'
export interface GradientComputerOptions {
  /** ORT threads of the in-process computer (default 2) */
  readonly computeThreads?: number
  /** told when a micro-batch is computed in process because its function kept failing */
  readonly onFallback?: (info: { index: number, error: string }) => void
  /** parent directory of the pool's scratch directory (default: the OS temp dir) */
  readonly scratchDir?: string
  /**
   * In process only: one gradient buffer serves every step (see OnnxGradientComputerOptions);
   * offloaded steps always get fresh arrays, since their local fallback computes several
   * micro-batches whose gradients are combined
   */
  readonly reuseGradientBuffer?: boolean
}

export class OffloadSetupError extends Error {
  override name = 'OffloadSetupError'
}

export async function createGradientComputer(model: ModelDefinition, offload: OffloadConfig | undefined, options: GradientComputerOptions = {}): Promise<GradientComputer> {
  if (offload === undefined || offload.mode === 'none') return createOnnxGradientComputer(model, { intraOpThreads: options.computeThreads, reuseGradientBuffer: options.reuseGradientBuffer })
  // the fallback computes only when a remote micro-batch fails: it does not keep a step's peak
  const local = createOnnxGradientComputer(model, { intraOpThreads: options.computeThreads, memoryArena: false })

  if (offload.mode === 'pool') {
    // loaded on demand: a peer that computes in process never loads the pool or the AWS SDK
    const { createLocalFileBlobStore } = await import('./local-file-blob-store.js')
    const { createWorkerPool, defaultPoolWorkers } = await import('./pool/worker-pool.js')
    const root = await mkdtemp(join(options.scratchDir ?? tmpdir(), 'p2pmld-pool-'))
    const workers = offload.workers ?? defaultPoolWorkers()
    const computer = createOffloadComputer({
      model,
      store: createLocalFileBlobStore(root),
      dispatcher: createWorkerPool({ root, workers, threadsPerWorker: offload.threadsPerWorker }),
      local,
      microBatches: offload.microBatches ?? workers,
      minMicroBatchSize: offload.minMicroBatchSize,
      namespace: 'pool',
      onFallback: options.onFallback
    })
    return { ...computer, close: async () => { try { await computer.close() } finally { await rm(root, { recursive: true, force: true }) } } }
  }

  try {
    return await createAwsComputer(model, offload, local, options)
  } catch (error) {
    await local.close().catch(() => {})
    throw explainAwsSetupError(error, offload)
  }
}

type AwsOffload = Extract<OffloadConfig, { mode: 'lambda' | 'stepfunctions' }>

/** Lambda or Step Functions -> Lambda, each checked against AWS at the job's start (bucket, function, state machine). */
async function createAwsComputer(model: ModelDefinition, offload: AwsOffload, local: GradientComputer, options: GradientComputerOptions): Promise<GradientComputer> {
  const { createS3BlobStore } = await import('./s3-blob-store.js')
  const { createLambdaClient, createSfnClient } = await import('./aws/clients.js')
  const store = createS3BlobStore({ bucket: offload.bucket, prefix: offload.prefix, client: offload.region !== undefined ? { region: offload.region } : {} })
  // a missing bucket, or a prefix the role may not write, failed step 0 ('The specified bucket does
  // not exist'): one object written and removed now (the peer policy grants both)
  const probe = `setup-check-${randomUUID()}`
  await store.put(probe, new Uint8Array(1))
  await store.delete([probe])
  const common = {
    model,
    store,
    local,
    microBatches: offload.microBatches,
    minMicroBatchSize: offload.minMicroBatchSize,
    eventStore: { bucket: offload.bucket, prefix: offload.prefix },
    onFallback: options.onFallback
  }
  const { ensureStateMachine, findFunctionArn } = await import('./aws/ensure-resources.js')
  if (offload.mode === 'lambda') {
    const { createLambdaDispatcher } = await import('./aws/lambda-dispatcher.js')
    const client = createLambdaClient(offload)
    // a wrong name failed every micro-batch of every step (its retries with backoff, then computed
    // in process: a step took ~2.6 s instead of 0.1): looked up once, so the job's start fails
    const found = await findFunctionArn(client, offload.functionName).catch((error: unknown) => {
      // a role without lambda:GetFunction (the daemon policy grants it) cannot look: invoking will tell
      if ((error as { name?: string }).name === 'AccessDeniedException') return offload.functionName
      client.destroy()
      throw error
    })
    if (found === undefined) {
      client.destroy()
      throw new OffloadSetupError(`offload.functionName: no Lambda function '${offload.functionName}' in this account/region: deploy it first (p2pmld functions deploy)`)
    }
    const dispatcher = createLambdaDispatcher({
      client,
      functionName: offload.functionName,
      retry: offload.retry,
      timeoutSeconds: offload.timeoutSeconds,
      concurrency: offload.concurrency
    })
    return createOffloadComputer({ ...common, dispatcher })
  }

  const { buildGradientStateMachine } = await import('./aws/state-machine.js')
  const { createStepFunctionsDispatcher } = await import('./aws/stepfunctions-dispatcher.js')
  const sfn = createSfnClient(offload)
  const resolveStateMachine = async (): Promise<string> => {
    if (offload.stateMachineArn !== undefined) return offload.stateMachineArn
    const lambda = createLambdaClient(offload)
    try {
      const functionArn = offload.functionName.startsWith('arn:') ? offload.functionName : await findFunctionArn(lambda, offload.functionName)
      if (functionArn === undefined) throw new OffloadSetupError(`offload.functionName: no Lambda function '${offload.functionName}' in this account/region: deploy it first (p2pmld functions deploy)`)
      const definition = buildGradientStateMachine({ functionArn, retry: offload.retry, timeoutSeconds: offload.timeoutSeconds, maxConcurrency: offload.maxConcurrency })
      return (await ensureStateMachine(sfn, { name: offload.stateMachineName, definition, roleArn: offload.roleArn!, type: offload.type })).arn
    } finally {
      lambda.destroy()
    }
  }
  // the machine is created or updated now, so a wrong setting fails the job's start, not step 0
  const arn = await resolveStateMachine()
  const dispatcher = createStepFunctionsDispatcher({
    client: sfn,
    stateMachineArn: async () => arn,
    type: offload.type,
    pollIntervalMs: offload.pollIntervalMs,
    // every micro-batch may take all its attempts and waits
    timeoutMs: 1000 * (offload.timeoutSeconds * offload.retry.attempts + offload.retry.intervalSeconds * offload.retry.backoffRate ** offload.retry.attempts) + 30_000
  })
  return createOffloadComputer({ ...common, dispatcher })
}

/**
 * An AWS SDK error at the offload's start as the user can act on it: no region, no credentials
 * and a missing bucket name the setting or variable to give; anything else keeps its message,
 * prefixed with the offload mode, function and bucket. OffloadSetupErrors pass as they are.
 */
export function explainAwsSetupError(error: unknown, offload: AwsOffload): Error {
  if (error instanceof OffloadSetupError) return error
  const message = error instanceof Error ? error.message : String(error)
  const name = (error as { name?: string }).name
  const where = `offload (mode ${offload.mode}, function '${offload.functionName}', bucket '${offload.bucket}'${offload.region === undefined ? '' : `, region ${offload.region}`})`
  if (/Region is missing/i.test(message)) return new OffloadSetupError(`${where}: the AWS SDK found no region: set offload.region in the daemon's offload setting, or AWS_REGION`, { cause: error })
  if (/Could not load credentials/i.test(message)) return new OffloadSetupError(`${where}: no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run on an instance whose role has the peer policy (peer-policy.json, written by p2pmld functions package)`, { cause: error })
  if (name === 'NoSuchBucket' || /specified bucket does not exist/i.test(message)) return new OffloadSetupError(`${where}: bucket '${offload.bucket}' does not exist${offload.region === undefined ? '' : ` in ${offload.region}`}: create it or fix offload.bucket`, { cause: error })
  return new OffloadSetupError(`${where}: ${message}`, { cause: error })
}
