/**
 * lambda and stepfunctions modes end to end through the real SDK clients against the local
 * stand-ins: the handler runs from the packaged zip (deployed with `ensureFunction`, as
 * `p2pmld functions deploy` does), the ASL runs in the stand-in's interpreter, blobs go through s3rver.
 */
import { ListStateMachinesCommand } from '@aws-sdk/client-sfn'
import aslValidator from 'asl-validator'
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { OffloadConfigInput } from '../../config/offload-config.js'
import { OffloadConfigSchema } from '../../config/offload-config.js'
import { createLambdaClient, createSfnClient } from '../../functions/aws/clients.js'
import { ensureFunction, ensureStateMachine } from '../../functions/aws/ensure-resources.js'
import { buildGradientStateMachine } from '../../functions/aws/state-machine.js'
import { createGradientComputer, explainAwsSetupError } from '../../functions/create-gradient-computer.js'
import type { OffloadComputer } from '../../functions/offload/offload-computer.js'
import { buildGradientPackage } from '../../functions/package.js'
import { createS3BlobStore } from '../../functions/s3-blob-store.js'
import type { Batch, GradientComputer } from '../../ml/core/types.js'
import { createOnnxGradientComputer } from '../../ml/engine/onnx-gradient-computer.js'
import { createModel } from '../../ml/models/zoo.js'
import { readDigits } from '../engine/mnist-digits.js'
import { applyEnv, startAwsStandIns, type AwsStandIns } from '../support/aws-stand-ins/index.js'
import { maxRelativeError } from './support.js'

const FUNCTION = 'p2pmld-gradient'
const ROLE = 'arn:aws:iam::000000000000:role/p2pmld-test'
let standIns: AwsStandIns
let restoreEnv: () => void
const opened: GradientComputer[] = []

const model = createModel('lenet5')
const params = model.initParameters(11)
const digits = readDigits(96)
const batch: Batch = { size: 96, sampleShape: model.sampleShape, inputs: digits.inputs, labels: digits.labels }
let expected: { gradient: Float32Array, loss: number, correct: number }

beforeAll(async () => {
  standIns = await startAwsStandIns({ concurrency: 3 })
  restoreEnv = applyEnv(standIns.env)
  const pkg = await buildGradientPackage()
  const lambda = createLambdaClient()
  try {
    await ensureFunction(lambda, { name: FUNCTION, zip: pkg.zip, roleArn: ROLE, timeoutSeconds: 60 })
  } finally {
    lambda.destroy()
  }
  const local = createOnnxGradientComputer(model, { intraOpThreads: 1 })
  opened.push(local)
  expected = await local.computeGradient(params, batch)
}, 180_000)

afterAll(async () => {
  for (const c of opened) await c.close()
  restoreEnv?.()
  await standIns?.stop()
})

async function offloadComputer(config: OffloadConfigInput): Promise<OffloadComputer> {
  const computer = await createGradientComputer(model, OffloadConfigSchema.parse(config), { computeThreads: 1 }) as OffloadComputer
  opened.push(computer)
  return computer
}

function expectSameGradient(actual: { gradient: Float32Array, loss: number, correct: number, size: number }): void {
  expect(actual.size).toBe(96)
  expect(actual.correct).toBe(expected.correct)
  expect(Math.abs(actual.loss - expected.loss)).toBeLessThan(1e-5 * Math.max(1, expected.loss))
  expect(maxRelativeError(actual.gradient, expected.gradient)).toBeLessThan(1e-4)
}

const aws = { bucket: 'p2pmld-test', prefix: 'test/', microBatches: 3, minMicroBatchSize: 16, retry: { attempts: 3, intervalSeconds: 1, backoffRate: 2 } }

describe('S3 blob store on the stand-in', () => {
  it('round-trips 10 MB byte for byte and deletes', async () => {
    const store = createS3BlobStore({ bucket: standIns.bucket, prefix: 'roundtrip/' })
    const bytes = new Uint8Array(randomBytes(10 * 1024 * 1024))
    await store.put('a/blob', bytes)
    expect(Buffer.from(await store.get('a/blob')).equals(Buffer.from(bytes))).toBe(true)
    await store.delete(['a/blob', 'never-written'])
    await expect(store.get('a/blob')).rejects.toThrow(/does not exist/)
    await store.close()
  })
})

describe('the state machine definition', () => {
  it('is valid ASL: a Map over $.tasks with MaxConcurrency, a Task with Retry (backoff) and Catch', () => {
    const definition = buildGradientStateMachine({ functionArn: 'arn:aws:lambda:us-east-1:000000000000:function:p2pmld-gradient', retry: { attempts: 4, intervalSeconds: 2, backoffRate: 3 }, timeoutSeconds: 30, maxConcurrency: 8 })
    const { isValid, errorsText } = aslValidator(definition)
    expect(isValid, errorsText()).toBe(true)
    const map = (definition.States as Record<string, any>).MicroBatches
    expect(map).toMatchObject({ Type: 'Map', ItemsPath: '$.tasks', MaxConcurrency: 8 })
    expect(map.Iterator.States.ComputeGradient.Retry).toEqual([{ ErrorEquals: ['States.ALL'], IntervalSeconds: 2, MaxAttempts: 3, BackoffRate: 3 }])
    expect(map.Iterator.States.ComputeGradient.Catch[0].Next).toBe('MicroBatchFailed')
  })
})

describe('offload: lambda', () => {
  it('gives the in-process gradient through Invoke, the handler running from the packaged zip', async () => {
    const computer = await offloadComputer({ mode: 'lambda', ...aws })
    const before = standIns.functions.invocations(FUNCTION)
    expectSameGradient(await computer.computeGradient(params, batch))
    expect(standIns.functions.invocations(FUNCTION) - before).toBe(3)
    expect(computer.stats()).toMatchObject({ microBatches: 3, fallbacks: 0 })
    // bytes through the store: parameters + graph bundles + micro-batches up, three gradients down
    expect(computer.stats().bytesDownloaded).toBe(3 * 4 * model.layout.totalSize)
  })

  it('a function name with no function fails at start, not every micro-batch of every step', async () => {
    const before = standIns.functions.invocations(FUNCTION)
    await expect(offloadComputer({ mode: 'lambda', ...aws, functionName: 'nope-fn' })).rejects.toThrow(/^offload\.functionName: no Lambda function 'nope-fn' in this account\/region: deploy it first \(p2pmld functions deploy\)$/)
    expect(standIns.functions.invocations(FUNCTION)).toBe(before)
  })

  it('a bucket that does not exist fails at start, naming it (step 0 failed with "The specified bucket does not exist")', async () => {
    await expect(offloadComputer({ mode: 'lambda', ...aws, bucket: 'no-such-bucket' })).rejects.toThrow(/^offload \(mode lambda, function 'p2pmld-gradient', bucket 'no-such-bucket'\): bucket 'no-such-bucket' does not exist: create it or fix offload.bucket$/)
  })

  it('an SDK without a region or credentials is told which setting or variable to give', () => {
    const lambda = OffloadConfigSchema.parse({ mode: 'lambda', ...aws }) as Parameters<typeof explainAwsSetupError>[1]
    expect(explainAwsSetupError(new Error('Region is missing'), lambda).message).toBe("offload (mode lambda, function 'p2pmld-gradient', bucket 'p2pmld-test'): the AWS SDK found no region: set offload.region in the daemon's offload setting, or AWS_REGION")
    expect(explainAwsSetupError(new Error('Could not load credentials from any providers'), lambda).message).toMatch(/^offload \(mode lambda, .*\): no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, /)
    expect(explainAwsSetupError(new Error('Throttled'), lambda).message).toBe("offload (mode lambda, function 'p2pmld-gradient', bucket 'p2pmld-test'): Throttled")
  })

  it('retries a function that fails twice, then succeeds (the client-side bounded retry)', async () => {
    const computer = await offloadComputer({ mode: 'lambda', ...aws, microBatches: 1 })
    standIns.functions.failNext(FUNCTION, 2)
    const before = standIns.functions.invocations(FUNCTION)
    expectSameGradient(await computer.computeGradient(params, batch))
    expect(standIns.functions.invocations(FUNCTION) - before).toBe(3)
    expect(computer.stats().fallbacks).toBe(0)
  })
})

describe('offload: stepfunctions', () => {
  it('creates the state machine and gives the in-process gradient (EXPRESS, StartSyncExecution)', async () => {
    const computer = await offloadComputer({ mode: 'stepfunctions', ...aws, roleArn: ROLE })
    const before = standIns.functions.invocations(FUNCTION)
    expectSameGradient(await computer.computeGradient(params, batch))
    expect(standIns.functions.invocations(FUNCTION) - before).toBe(3)
    expect(computer.stats()).toMatchObject({ fallbacks: 0, invocations: 1 })
  })

  it('STANDARD machines run through StartExecution + DescribeExecution', async () => {
    const computer = await offloadComputer({ mode: 'stepfunctions', ...aws, roleArn: ROLE, type: 'STANDARD', stateMachineName: 'p2pmld-standard', pollIntervalMs: 50 })
    expectSameGradient(await computer.computeGradient(params, batch))
    expect(computer.stats().fallbacks).toBe(0)
  })

  it("retries a function that fails twice, then succeeds (the ASL's Retry)", async () => {
    const computer = await offloadComputer({ mode: 'stepfunctions', ...aws, roleArn: ROLE, microBatches: 1 })
    standIns.functions.failNext(FUNCTION, 2)
    const before = standIns.functions.invocations(FUNCTION)
    const started = performance.now()
    expectSameGradient(await computer.computeGradient(params, batch))
    expect(standIns.functions.invocations(FUNCTION) - before).toBe(3)
    // backoff as specified: 1 s, then 2 s
    expect(performance.now() - started).toBeGreaterThan(2900)
    expect(computer.stats().fallbacks).toBe(0)
  })

  it('computes a micro-batch locally when its function always fails, and the step completes', async () => {
    const fallbacks: number[] = []
    const computer = await createGradientComputer(model, OffloadConfigSchema.parse({ mode: 'stepfunctions', ...aws, roleArn: ROLE, retry: { attempts: 2, intervalSeconds: 1, backoffRate: 1 } }), {
      computeThreads: 1,
      onFallback: (info) => fallbacks.push(info.index)
    }) as OffloadComputer
    opened.push(computer)
    standIns.functions.failNext(FUNCTION, Number.POSITIVE_INFINITY)
    const before = standIns.stateMachines.executionResults().length
    try {
      expectSameGradient(await computer.computeGradient(params, batch))
    } finally {
      standIns.functions.failNext(FUNCTION, 0)
    }
    // the execution itself succeeded: each micro-batch's Catch turned its failure into a
    // { failed, index, error, cause } item (a failed execution would fall back for all alike)
    const [execution, ...others] = standIns.stateMachines.executionResults().slice(before)
    expect(others).toEqual([])
    expect(execution.status, execution.error).toBe('SUCCEEDED')
    const items = JSON.parse(execution.output!) as Array<{ failed?: boolean, index?: number, error?: string }>
    expect(items.map((i) => [i.failed, i.index, i.error])).toEqual([[true, 0, 'InjectedFailure'], [true, 1, 'InjectedFailure'], [true, 2, 'InjectedFailure']])
    expect(fallbacks.sort()).toEqual([0, 1, 2])
    expect(computer.stats().fallbacks).toBe(3)
  })

  it('create-or-update is idempotent: one state machine, the latest definition', async () => {
    const sfn = createSfnClient()
    try {
      const definition = buildGradientStateMachine({ functionArn: 'arn:aws:lambda:us-east-1:000000000000:function:p2pmld-gradient', retry: { attempts: 2, intervalSeconds: 1, backoffRate: 2 }, timeoutSeconds: 10, maxConcurrency: 2 })
      const first = await ensureStateMachine(sfn, { name: 'p2pmld-idempotent', definition, roleArn: ROLE, type: 'EXPRESS' })
      const second = await ensureStateMachine(sfn, { name: 'p2pmld-idempotent', definition: { ...definition, Comment: 'v2' }, roleArn: ROLE, type: 'EXPRESS' })
      expect(first.created).toBe(true)
      expect(second).toEqual({ arn: first.arn, created: false })
      const listed = (await sfn.send(new ListStateMachinesCommand({}))).stateMachines!.filter((m) => m.name === 'p2pmld-idempotent')
      expect(listed).toHaveLength(1)
    } finally {
      sfn.destroy()
    }
  })
})
