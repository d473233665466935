/// <reference path="./modules.d.ts" />
/**
 * The Step Functions half of the stand-in: state machines (definitions validated with
 * asl-validator, as CreateStateMachine validates them) and executions run by our ASL interpreter
 * (asl-interpreter.ts), whose Task states call the stand-in Lambda functions. A function error
 * becomes the Task's error as AWS reports it (Error: the errorType; Cause: the function's error
 * payload as JSON), so the definition's Retry and Catch apply.
 */
import aslValidator from 'asl-validator'
import { createHash } from 'node:crypto'
import { runStateMachine, StatesError, type ResourceInvoker } from './asl-interpreter.js'
import type { FunctionHost } from './function-host.js'

export class SfnApiError extends Error {
  constructor(readonly type: string, message: string) {
    super(message)
    this.name = type
  }
}

interface Machine {
  arn: string
  name: string
  definition: string
  roleArn: string
  type: string
  creationDate: number
}

interface Execution {
  executionArn: string
  stateMachineArn: string
  name: string
  input: string
  status: 'RUNNING' | 'SUCCEEDED' | 'FAILED'
  startDate: number
  stopDate?: number
  output?: string
  error?: string
  cause?: string
}

export interface StateMachineService {
  handle(action: string, body: Record<string, unknown>): Promise<Record<string, unknown>>
  /** executions started so far */
  executions(): number
  /** the executions started so far, oldest first: how each ended (RUNNING while it runs) and its output */
  executionResults(): Array<{ status: string, output?: string, error?: string }>
}

export function createStateMachineService(functions: FunctionHost, region: string, account: string): StateMachineService {
  const machines = new Map<string, Machine>()
  const executions = new Map<string, Execution>()
  let started = 0

  const validate = (definition: string): void => {
    let parsed: unknown
    try {
      parsed = JSON.parse(definition)
    } catch (error) {
      throw new SfnApiError('InvalidDefinition', `definition is not JSON: ${(error as Error).message}`)
    }
    const { isValid, errorsText } = aslValidator(parsed as never)
    if (!isValid) throw new SfnApiError('InvalidDefinition', `Invalid State Machine Definition: ${errorsText('; ')}`)
  }

  const machineByArn = (arn: unknown): Machine => {
    const machine = [...machines.values()].find((m) => m.arn === arn)
    if (machine === undefined) throw new SfnApiError('StateMachineDoesNotExist', `State Machine Does Not Exist: '${String(arn)}'`)
    return machine
  }

  // a Task's Resource (a Lambda function ARN, or a bare name) -> the stand-in function of that name
  const invokeFunction: ResourceInvoker = async (resource, input) => {
    const functionName = resource.split(':function:')[1]?.split(':')[0] ?? resource
    const outcome = await functions.invoke(functionName, input)
    if (outcome.ok) return outcome.payload
    const payload = outcome.payload as { errorType?: string, errorMessage?: string }
    throw new StatesError(payload.errorType ?? 'Error', JSON.stringify(payload))
  }

  const execute = async (machine: Machine, execution: Execution): Promise<void> => {
    started++
    try {
      const result = await runStateMachine(JSON.parse(machine.definition), JSON.parse(execution.input), invokeFunction)
      execution.status = 'SUCCEEDED'
      execution.output = JSON.stringify(result)
    } catch (error) {
      execution.status = 'FAILED'
      execution.error = (error as { name?: string }).name ?? 'States.Runtime'
      execution.cause = (error as Error).message
    }
    execution.stopDate = Date.now() / 1000
  }

  const newExecution = (body: Record<string, unknown>): { machine: Machine, execution: Execution } => {
    const machine = machineByArn(body.stateMachineArn)
    const name = typeof body.name === 'string' ? body.name : createHash('sha256').update(`${Date.now()}${Math.random()}`).digest('hex').slice(0, 32)
    const kind = machine.type === 'EXPRESS' ? 'express' : 'execution'
    const execution: Execution = {
      executionArn: `arn:aws:states:${region}:${account}:${kind}:${machine.name}:${name}`,
      stateMachineArn: machine.arn,
      name,
      input: typeof body.input === 'string' ? body.input : '{}',
      status: 'RUNNING',
      startDate: Date.now() / 1000
    }
    executions.set(execution.executionArn, execution)
    return { machine, execution }
  }

  const describe = (e: Execution): Record<string, unknown> => ({ ...e })

  return {
    executions: () => started,
    executionResults: () => [...executions.values()].map(({ status, output, error }) => ({ status, output, error })),
    async handle(action, body) {
      switch (action) {
        case 'CreateStateMachine': {
          const name = String(body.name)
          const definition = String(body.definition)
          validate(definition)
          const existing = machines.get(name)
          if (existing !== undefined) {
            if (existing.definition === definition && existing.roleArn === body.roleArn) return { stateMachineArn: existing.arn, creationDate: existing.creationDate }
            throw new SfnApiError('StateMachineAlreadyExists', `State Machine Already Exists: '${existing.arn}'`)
          }
          const machine: Machine = { arn: `arn:aws:states:${region}:${account}:stateMachine:${name}`, name, definition, roleArn: String(body.roleArn), type: String(body.type ?? 'STANDARD'), creationDate: Date.now() / 1000 }
          machines.set(name, machine)
          return { stateMachineArn: machine.arn, creationDate: machine.creationDate }
        }
        case 'UpdateStateMachine': {
          const machine = machineByArn(body.stateMachineArn)
          if (typeof body.definition === 'string') {
            validate(body.definition)
            machine.definition = body.definition
          }
          if (typeof body.roleArn === 'string') machine.roleArn = body.roleArn
          return { updateDate: Date.now() / 1000 }
        }
        case 'DescribeStateMachine': {
          const m = machineByArn(body.stateMachineArn)
          return { stateMachineArn: m.arn, name: m.name, definition: m.definition, roleArn: m.roleArn, type: m.type, status: 'ACTIVE', creationDate: m.creationDate }
        }
        case 'ListStateMachines':
          return { stateMachines: [...machines.values()].map((m) => ({ stateMachineArn: m.arn, name: m.name, type: m.type, creationDate: m.creationDate })) }
        case 'StartSyncExecution': {
          const { machine, execution } = newExecution(body)
          if (machine.type !== 'EXPRESS') throw new SfnApiError('StateMachineTypeNotSupported', 'This operation is only supported by EXPRESS state machines')
          await execute(machine, execution)
          const { executionArn, stateMachineArn, name, startDate, stopDate, status, output, error, cause, input } = execution
          return { executionArn, stateMachineArn, name, startDate, stopDate, status, output, error, cause, input }
        }
        case 'StartExecution': {
          const { machine, execution } = newExecution(body)
          void execute(machine, execution)
          return { executionArn: execution.executionArn, startDate: execution.startDate }
        }
        case 'DescribeExecution': {
          const execution = executions.get(String(body.executionArn))
          if (execution === undefined) throw new SfnApiError('ExecutionDoesNotExist', `Execution Does Not Exist: '${String(body.executionArn)}'`)
          return describe(execution)
        }
        default:
          throw new SfnApiError('UnknownOperationException', `the stand-in does not implement ${action}`)
      }
    }
  }
}
