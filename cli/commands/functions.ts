/**
 * `p2pmld functions package --out DIR`: the gradient function's deployment zip, the state
 * machine's ASL and the IAM policies. `p2pmld functions deploy`: create or update the Lambda
 * function and the state machine in the account the AWS SDK's default chain points at.
 */
import { resolve } from 'node:path'
import type { Command } from 'commander'
import { z } from 'zod'
import { OffloadRetrySchema, S3BucketNameSchema } from '../../config/offload-config.js'
import { ConfigError, formatZodError } from '../../config/job-config.js'
import { action } from '../support/output.js'

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max)

const CommonSchema = z.object({
  functionName: z.string().min(1).max(64).default('p2pmld-gradient'),
  stateMachineName: z.string().regex(/^[A-Za-z0-9_-]{1,80}$/, '1-80 letters, digits, dashes or underscores').default('p2pmld-gradients'),
  retryAttempts: int(1, 10).default(3),
  retryInterval: int(1, 300).default(1),
  backoffRate: z.coerce.number().min(1).max(10).default(2),
  invocationTimeout: int(1, 900).default(60),
  maxConcurrency: int(0, 10000).default(0)
})

const PackageSchema = CommonSchema.extend({
  out: z.string().min(1),
  // the placeholder, or a name S3 (and the daemon's offload config) accepts: My_Bucket went into the policies
  bucket: z.literal('YOUR-BUCKET').or(S3BucketNameSchema).default('YOUR-BUCKET'),
  prefix: z.string().default('p2pmld/'),
  functionArn: z.string().startsWith('arn:').optional()
}).strict()

const DeploySchema = CommonSchema.extend({
  roleArn: z.string().startsWith('arn:', 'the Lambda execution role ARN (arn:aws:iam::ACCOUNT:role/NAME)'),
  stateMachineRoleArn: z.string().startsWith('arn:').optional(),
  type: z.enum(['EXPRESS', 'STANDARD']).default('EXPRESS'),
  zip: z.string().min(1).optional(),
  memory: int(128, 10240).default(2048),
  timeout: int(1, 900).optional(),
  region: z.string().min(1).optional()
}).strict().refine((o) => o.timeout === undefined || o.timeout <= o.invocationTimeout, {
  path: ['timeout'],
  message: "longer than --invocation-timeout: the state machine would retry a micro-batch while the timed-out invocation still runs (and bills); use --timeout <= --invocation-timeout"
})

function parse<S extends z.ZodType>(schema: S, options: unknown, command: string): z.output<S> {
  const result = schema.safeParse(options)
  if (!result.success) throw new ConfigError(formatZodError(result.error, `options of 'p2pmld functions ${command}'`).replace(/^( {2})([a-zA-Z]+)/gm, (_m, indent: string, key: string) => `${indent}--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`))
  return result.data
}

function stateMachineSettings(o: z.output<typeof CommonSchema>): { retry: z.output<typeof OffloadRetrySchema>, timeoutSeconds: number, maxConcurrency: number } {
  return { retry: { attempts: o.retryAttempts, intervalSeconds: o.retryInterval, backoffRate: o.backoffRate }, timeoutSeconds: o.invocationTimeout, maxConcurrency: o.maxConcurrency }
}

function addCommonOptions(command: Command): Command {
  return command
    .option('--function-name <name>', 'the gradient Lambda function', 'p2pmld-gradient')
    .option('--state-machine-name <name>', 'the state machine', 'p2pmld-gradients')
    .option('--retry-attempts <n>', 'attempts per micro-batch, the first included (ASL Retry)', '3')
    .option('--retry-interval <s>', 'seconds before the first retry', '1')
    .option('--backoff-rate <x>', 'each later wait is this many times the previous', '2')
    .option('--invocation-timeout <s>', "one invocation's time limit in the state machine", '60')
    .option('--max-concurrency <n>', 'Map MaxConcurrency (0: no limit)', '0')
}

export function registerFunctionsCommands(program: Command): void {
  const functions = program.command('functions').description('the serverless gradient function: build its deployment package, deploy it to AWS')

  addCommonOptions(functions.command('package').description('write the deployment zip (handler + onnxruntime-node Linux x64), the state machine ASL and the IAM policies'))
    .requiredOption('--out <dir>', 'directory to write them to')
    .option('--bucket <name>', 'S3 bucket named in the IAM policies', 'YOUR-BUCKET')
    .option('--prefix <prefix>', 'S3 key prefix named in the IAM policies', 'p2pmld/')
    .option('--function-arn <arn>', `written into the ASL (default: the placeholder \${GradientFunctionArn})`)
    .action(action(async (raw: Record<string, unknown>) => {
      const o = parse(PackageSchema, raw, 'package')
      const out = resolve(o.out)
      process.stderr.write(`building the deployment package into ${out}\n`)
      // loaded on demand: esbuild and the AWS SDK stay out of every other command's start-up
      const { writeDeploymentFiles } = await import('../../functions/deployment.js')
      const summary = await writeDeploymentFiles({ outDir: out, bucket: o.bucket, prefix: o.prefix, functionName: o.functionName, stateMachineName: o.stateMachineName, functionArn: o.functionArn, ...stateMachineSettings(o) })
      process.stdout.write(`wrote ${summary.files.length} files to ${out} (zip ${(summary.zipBytes / 1e6).toFixed(1)} MB, ${(summary.unzippedBytes / 1e6).toFixed(1)} MB unzipped):\n${summary.files.map((f) => `  ${f}`).join('\n')}\n`)
      // the policies then grant access to a bucket of that name: said, not left to be found in them
      if (o.bucket === 'YOUR-BUCKET') process.stdout.write(`note: the IAM policies name the placeholder bucket YOUR-BUCKET: replace it in the policies under ${out}/iam with the offload bucket, or package again with --bucket <name>\n`)
    }))

  addCommonOptions(functions.command('deploy').description('create or update the Lambda function and the state machine (idempotent; credentials and region from the AWS SDK default chain)'))
    .requiredOption('--role-arn <arn>', 'IAM role the Lambda function runs as')
    .option('--state-machine-role-arn <arn>', 'IAM role the state machine runs as (absent: no state machine, for offload mode lambda)')
    .option('--type <type>', 'state machine type: EXPRESS or STANDARD', 'EXPRESS')
    .option('--zip <file>', 'a zip written by `functions package` (default: build one now)')
    .option('--memory <mb>', 'function memory, MB (vCPUs grow with it: 1 per 1,769 MB)', '2048')
    .option('--timeout <s>', 'function timeout, seconds (default and at most: --invocation-timeout)')
    .option('--region <region>', 'AWS region (default: the SDK default chain, e.g. AWS_REGION)')
    .action(action(async (raw: Record<string, unknown>) => {
      const o = parse(DeploySchema, raw, 'deploy')
      const { deployOffload } = await import('../../functions/deployment.js')
      const summary = await deployOffload({
        functionName: o.functionName, roleArn: o.roleArn, stateMachineRoleArn: o.stateMachineRoleArn, stateMachineName: o.stateMachineName, type: o.type,
        zipFile: o.zip === undefined ? undefined : resolve(o.zip), memoryMb: o.memory, functionTimeoutSeconds: o.timeout ?? o.invocationTimeout, region: o.region,
        onProgress: (line) => process.stderr.write(`${line}\n`), ...stateMachineSettings(o)
      })
      const lines = [`function ${summary.functionCreated ? 'created' : 'updated'}: ${summary.functionArn}`]
      if (summary.stateMachineArn !== undefined) lines.push(`state machine ${summary.stateMachineCreated === true ? 'created' : 'updated'}: ${summary.stateMachineArn}`)
      process.stdout.write(lines.join('\n') + '\n')
    }))
}
