/**
 * Idempotent create-or-update of the gradient Lambda function and the state machine through the
 * SDK: what `p2pmld functions deploy` and a `stepfunctions` peer at start run. Running it twice
 * leaves one function and one state machine with the latest code and definition.
 */
import {
  CreateFunctionCommand, GetFunctionCommand, ResourceNotFoundException, UpdateFunctionCodeCommand,
  UpdateFunctionConfigurationCommand, waitUntilFunctionActiveV2, waitUntilFunctionUpdatedV2, type LambdaClient
} from '@aws-sdk/client-lambda'
import { CreateStateMachineCommand, ListStateMachinesCommand, StateMachineAlreadyExists, UpdateStateMachineCommand, type SFNClient } from '@aws-sdk/client-sfn'

export interface FunctionSpec {
  readonly name: string
  /** the deployment zip (functions/package.ts) */
  readonly zip: Uint8Array
  /** execution role ARN */
  readonly roleArn: string
  /** Lambda runtime (default nodejs22.x) */
  readonly runtime?: string
  /** MB (default 2048: about 1.2 vCPU) */
  readonly memoryMb?: number
  /** seconds (default 120) */
  readonly timeoutSeconds?: number
}

export const LAMBDA_HANDLER = 'handler.handler'
const WAIT = { maxWaitTime: 300, minDelay: 1, maxDelay: 5 }

/** Creates the function, or updates its code and configuration; returns its ARN and whether it was created. */
export async function ensureFunction(client: LambdaClient, spec: FunctionSpec): Promise<{ arn: string, created: boolean }> {
  const configuration = {
    Role: spec.roleArn,
    Runtime: (spec.runtime ?? 'nodejs22.x') as 'nodejs22.x',
    Handler: LAMBDA_HANDLER,
    MemorySize: spec.memoryMb ?? 2048,
    Timeout: spec.timeoutSeconds ?? 120
  }
  const existing = await findFunctionArn(client, spec.name)
  if (existing === undefined) {
    const out = await client.send(new CreateFunctionCommand({ FunctionName: spec.name, Code: { ZipFile: spec.zip }, Architectures: ['x86_64'], PackageType: 'Zip', ...configuration }))
    await waitUntilFunctionActiveV2({ client, ...WAIT }, { FunctionName: spec.name })
    return { arn: out.FunctionArn!, created: true }
  }
  await client.send(new UpdateFunctionCodeCommand({ FunctionName: spec.name, ZipFile: spec.zip }))
  await waitUntilFunctionUpdatedV2({ client, ...WAIT }, { FunctionName: spec.name })
  await client.send(new UpdateFunctionConfigurationCommand({ FunctionName: spec.name, ...configuration }))
  await waitUntilFunctionUpdatedV2({ client, ...WAIT }, { FunctionName: spec.name })
  return { arn: existing, created: false }
}

/** The function's ARN, undefined when it does not exist. */
export async function findFunctionArn(client: LambdaClient, name: string): Promise<string | undefined> {
  try {
    const out = await client.send(new GetFunctionCommand({ FunctionName: name }))
    return out.Configuration?.FunctionArn
  } catch (error) {
    if (error instanceof ResourceNotFoundException || (error as { name?: string }).name === 'ResourceNotFoundException') return undefined
    throw error
  }
}

export interface StateMachineSpec {
  readonly name: string
  readonly definition: Record<string, unknown>
  readonly roleArn: string
  readonly type: 'EXPRESS' | 'STANDARD'
}

/** Creates the state machine, or updates its definition and role; returns its ARN. */
export async function ensureStateMachine(client: SFNClient, spec: StateMachineSpec): Promise<{ arn: string, created: boolean }> {
  const definition = JSON.stringify(spec.definition)
  const update = async (arn: string): Promise<{ arn: string, created: boolean }> => {
    await client.send(new UpdateStateMachineCommand({ stateMachineArn: arn, definition, roleArn: spec.roleArn }))
    return { arn, created: false }
  }
  const existing = await findStateMachineArn(client, spec.name)
  if (existing !== undefined) return await update(existing)
  try {
    const out = await client.send(new CreateStateMachineCommand({ name: spec.name, definition, roleArn: spec.roleArn, type: spec.type }))
    return { arn: out.stateMachineArn!, created: true }
  } catch (error) {
    // created by someone else between the list and the create (another peer starting)
    if (!(error instanceof StateMachineAlreadyExists) && (error as { name?: string }).name !== 'StateMachineAlreadyExists') throw error
    const arn = await findStateMachineArn(client, spec.name)
    if (arn === undefined) throw error
    return await update(arn)
  }
}

export async function findStateMachineArn(client: SFNClient, name: string): Promise<string | undefined> {
  let nextToken: string | undefined
  do {
    const page = await client.send(new ListStateMachinesCommand({ nextToken }))
    const found = page.stateMachines?.find((m) => m.name === name)
    if (found !== undefined) return found.stateMachineArn
    nextToken = page.nextToken
  } while (nextToken !== undefined)
  return undefined
}
