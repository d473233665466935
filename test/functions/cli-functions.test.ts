/**
 * `p2pmld functions package` and `deploy` against the stand-ins: the zip holds the handler and
 * onnxruntime-node's Linux x64 binaries only, the ASL validates, deploy is idempotent, and the
 * deployed function computes a gradient when invoked through the SDK.
 */
import { InvokeCommand } from '@aws-sdk/client-lambda'
import { ListStateMachinesCommand } from '@aws-sdk/client-sfn'
import aslValidator from 'asl-validator'
import { unzipSync } from 'fflate'
import { spawnSync } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createProgram } from '../../cli/program.js'
import { createLambdaClient, createSfnClient } from '../../functions/aws/clients.js'
import { ensureBuilt } from '../e2e/support/build.js'
import { applyEnv, startAwsStandIns, type AwsStandIns } from '../support/aws-stand-ins/index.js'
import { removeScratchDirs, scratchDir } from './support.js'

let standIns: AwsStandIns
let restoreEnv: () => void
let out: string

async function run(...args: string[]): Promise<{ stdout: string, stderr: string, exitCode: number }> {
  let stdout = ''
  let stderr = ''
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => { stdout += String(chunk); return true })
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => { stderr += String(chunk); return true })
  const before = process.exitCode
  process.exitCode = undefined
  try {
    await createProgram().exitOverride().parseAsync(['node', 'p2pmld', ...args])
    return { stdout, stderr, exitCode: process.exitCode ?? 0 }
  } finally {
    o.mockRestore()
    e.mockRestore()
    process.exitCode = before
  }
}

beforeAll(async () => {
  standIns = await startAwsStandIns()
  restoreEnv = applyEnv(standIns.env)
  out = await scratchDir('functions-package-')
})

afterAll(async () => {
  restoreEnv?.()
  await standIns?.stop()
  await removeScratchDirs()
})

describe('p2pmld functions', () => {
  it('package runs from the built (bundled) CLI users get, not only from the sources', async () => {
    // esbuild's API, bundled into the CLI, failed there with '__filename is not defined' while
    // the in-process runs below passed
    const cli = await ensureBuilt()
    const dir = await scratchDir('functions-package-bundled-')
    const run = spawnSync(process.execPath, [cli, 'functions', 'package', '--out', dir, '--bucket', 'my-bucket'], { encoding: 'utf8', timeout: 120_000 })
    expect(run.status, run.stderr).toBe(0)
    expect(run.stdout).toMatch(/wrote 8 files/)
    const files = Object.keys(unzipSync(new Uint8Array(await readFile(join(dir, 'gradient-function.zip')))))
    expect(files).toContain('handler.mjs')
  }, 180_000)

  it('package writes the zip (handler + Linux x64 ONNX Runtime only), a valid ASL and the IAM policies', async () => {
    const result = await run('functions', 'package', '--out', out, '--bucket', 'my-bucket', '--retry-attempts', '4')
    expect(result.exitCode, result.stderr).toBe(0)
    expect(result.stdout).toMatch(/wrote 8 files/)
    const files = Object.keys(unzipSync(new Uint8Array(await readFile(join(out, 'gradient-function.zip')))))
    expect(files).toContain('handler.mjs')
    expect(files).toContain('node_modules/onnxruntime-node/bin/napi-v6/linux/x64/onnxruntime_binding.node')
    expect(files.filter((f) => f.includes('/bin/') && !f.includes('/linux/x64/'))).toEqual([])
    expect(files.filter((f) => /libp2p|@chainsafe|pino|commander/.test(f))).toEqual([])
    const handler = new TextDecoder().decode(unzipSync(new Uint8Array(await readFile(join(out, 'gradient-function.zip'))), { filter: (f) => f.name === 'handler.mjs' })['handler.mjs'])
    expect(handler).not.toMatch(/libp2p/)
    // the packaged ASL names a placeholder for the function's ARN (deploy writes the real one)
    const text = await readFile(join(out, 'state-machine.asl.json'), 'utf8')
    expect(text).toContain('${GradientFunctionArn}')
    const asl = JSON.parse(text.replace('${GradientFunctionArn}', 'arn:aws:lambda:us-east-1:123456789012:function:p2pmld-gradient'))
    const validation = aslValidator(asl)
    expect(validation.isValid, validation.errorsText()).toBe(true)
    expect(asl.States.MicroBatches.Iterator.States.ComputeGradient.Retry[0].MaxAttempts).toBe(3)
    const peer = JSON.parse(await readFile(join(out, 'iam', 'peer-policy.json'), 'utf8'))
    expect(peer.Statement[0].Resource).toBe('arn:aws:s3:::my-bucket/p2pmld/*')
  }, 120_000)

  it('deploy creates, then updates the same function and state machine (idempotent), and the function runs', async () => {
    const args = ['functions', 'deploy', '--zip', join(out, 'gradient-function.zip'), '--role-arn', 'arn:aws:iam::000000000000:role/fn', '--state-machine-role-arn', 'arn:aws:iam::000000000000:role/sm']
    const first = await run(...args)
    expect(first.exitCode, first.stderr).toBe(0)
    expect(first.stdout).toMatch(/function created: arn:aws:lambda:us-east-1:000000000000:function:p2pmld-gradient/)
    expect(first.stdout).toMatch(/state machine created: arn:aws:states:us-east-1:000000000000:stateMachine:p2pmld-gradients/)
    const second = await run(...args, '--memory', '4096')
    expect(second.exitCode, second.stderr).toBe(0)
    expect(second.stdout).toMatch(/function updated/)
    expect(second.stdout).toMatch(/state machine updated/)
    expect(standIns.functions.get('p2pmld-gradient')?.config.memoryMb).toBe(4096)
    // the function's time limit is the state machine's invocation limit unless set lower
    expect(standIns.functions.get('p2pmld-gradient')?.config.timeoutSeconds).toBe(60)
    const sfn = createSfnClient()
    const machines = (await sfn.send(new ListStateMachinesCommand({}))).stateMachines ?? []
    sfn.destroy()
    expect(machines.map((m) => m.name)).toEqual(['p2pmld-gradients'])
    // the deployed code answers: a malformed event is refused with the field named
    const lambda = createLambdaClient()
    const reply = await lambda.send(new InvokeCommand({ FunctionName: 'p2pmld-gradient', Payload: new TextEncoder().encode('{"version":1}') }))
    lambda.destroy()
    expect(reply.FunctionError).toBe('Unhandled')
    expect(new TextDecoder().decode(reply.Payload)).toMatch(/GradientEventError.*graph/)
  }, 120_000)

  it('names the bad option', async () => {
    const result = await run('functions', 'deploy', '--role-arn', 'not-an-arn')
    expect(result.exitCode).toBe(1)
    expect(result.stderr).toMatch(/--role-arn/)
    // a function allowed to run longer than the state machine waits for it would be retried while it still runs
    const longer = await run('functions', 'deploy', '--role-arn', 'arn:aws:iam::000000000000:role/fn', '--timeout', '120', '--invocation-timeout', '60')
    expect(longer.exitCode).toBe(1)
    expect(longer.stderr).toMatch(/--timeout: longer than --invocation-timeout/)
    // a bucket name S3 (and the daemon's offload config) refuses went into the IAM policies
    const bucket = await run('functions', 'package', '--out', join(await scratchDir('functions-bad-bucket-'), 'never-written'), '--bucket', 'My_Bucket')
    expect(bucket.exitCode).toBe(1)
    expect(bucket.stderr).toMatch(/--bucket: an S3 bucket name: 3-63 lower-case letters, digits, dots and dashes/)
  })
})
