/**
 * What `p2pmld functions package` writes and `p2pmld functions deploy` does: the deployment zip,
 * the state machine's ASL and the IAM policies in one directory; then an idempotent
 * create-or-update of the Lambda function and the state machine through the SDK.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { OffloadRetryConfig } from '../config/offload-config.js'
import { createLambdaClient, createSfnClient } from './aws/clients.js'
import { ensureFunction, ensureStateMachine } from './aws/ensure-resources.js'
import { buildGradientStateMachine } from './aws/state-machine.js'
import { offloadPolicies } from './iam-policies.js'
import { buildGradientPackage } from './package.js'

export const ZIP_FILE = 'gradient-function.zip'
export const ASL_FILE = 'state-machine.asl.json'
/** in a packaged ASL: replace with the function's ARN (or let `deploy` write the real one) */
export const FUNCTION_ARN_PLACEHOLDER = '${GradientFunctionArn}'

export interface StateMachineSettings {
  readonly retry: OffloadRetryConfig
  readonly timeoutSeconds: number
  readonly maxConcurrency: number
}

export interface PackageOptions extends StateMachineSettings {
  readonly outDir: string
  readonly bucket: string
  readonly prefix: string
  readonly functionName: string
  readonly stateMachineName: string
  /** written into the ASL (default: the placeholder) */
  readonly functionArn?: string
}

export interface PackageSummary {
  readonly files: string[]
  readonly zipBytes: number
  readonly unzippedBytes: number
}

export async function writeDeploymentFiles(options: PackageOptions): Promise<PackageSummary> {
  await mkdir(join(options.outDir, 'iam'), { recursive: true })
  const pkg = await buildGradientPackage()
  await writeFile(join(options.outDir, ZIP_FILE), pkg.zip)
  const definition = buildGradientStateMachine({ ...options, functionArn: options.functionArn ?? FUNCTION_ARN_PLACEHOLDER })
  await writeFile(join(options.outDir, ASL_FILE), JSON.stringify(definition, null, 2) + '\n')
  const files = [ZIP_FILE, ASL_FILE]
  for (const [name, policy] of Object.entries(offloadPolicies(options))) {
    await writeFile(join(options.outDir, 'iam', name), JSON.stringify(policy, null, 2) + '\n')
    files.push(join('iam', name))
  }
  return { files, zipBytes: pkg.zip.length, unzippedBytes: pkg.unzippedBytes }
}

export interface DeployOptions extends StateMachineSettings {
  readonly functionName: string
  /** the Lambda execution role */
  readonly roleArn: string
  /** the state machine's role; absent: no state machine (lambda mode only) */
  readonly stateMachineRoleArn?: string
  readonly stateMachineName: string
  readonly type: 'EXPRESS' | 'STANDARD'
  /** a zip written by `package` (default: build one now) */
  readonly zipFile?: string
  readonly memoryMb: number
  readonly functionTimeoutSeconds: number
  readonly region?: string
  /** progress lines */
  readonly onProgress?: (line: string) => void
}

export interface DeploySummary {
  readonly functionArn: string
  readonly functionCreated: boolean
  readonly stateMachineArn?: string
  readonly stateMachineCreated?: boolean
}

export async function deployOffload(options: DeployOptions): Promise<DeploySummary> {
  const progress = options.onProgress ?? (() => {})
  progress(options.zipFile === undefined ? 'building the deployment package' : `reading ${options.zipFile}`)
  const zip = options.zipFile === undefined ? (await buildGradientPackage()).zip : new Uint8Array(await readFile(options.zipFile))
  const lambda = createLambdaClient(options)
  const sfn = createSfnClient(options)
  try {
    progress(`creating or updating Lambda function ${options.functionName} (${(zip.length / 1e6).toFixed(1)} MB)`)
    const fn = await ensureFunction(lambda, { name: options.functionName, zip, roleArn: options.roleArn, memoryMb: options.memoryMb, timeoutSeconds: options.functionTimeoutSeconds })
    if (options.stateMachineRoleArn === undefined) return { functionArn: fn.arn, functionCreated: fn.created }
    progress(`creating or updating state machine ${options.stateMachineName}`)
    const definition = buildGradientStateMachine({ ...options, functionArn: fn.arn })
    const machine = await ensureStateMachine(sfn, { name: options.stateMachineName, definition, roleArn: options.stateMachineRoleArn, type: options.type })
    return { functionArn: fn.arn, functionCreated: fn.created, stateMachineArn: machine.arn, stateMachineCreated: machine.created }
  } finally {
    lambda.destroy()
    sfn.destroy()
  }
}
