/**
 * One local HTTP endpoint speaking the AWS Lambda REST API (CreateFunction, GetFunction,
 * UpdateFunctionCode, UpdateFunctionConfiguration, Invoke) and the Step Functions JSON 1.0 API
 * (X-Amz-Target: AWSStepFunctions.*), for the real SDK clients pointed at it with
 * AWS_ENDPOINT_URL_LAMBDA / AWS_ENDPOINT_URL_SFN. Signatures are not checked.
 */
import { createHash } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FunctionConfig, FunctionHost } from './function-host.js'
import { SfnApiError, type StateMachineService } from './state-machines.js'

export interface StandInServer {
  readonly endpoint: string
  stop(): Promise<void>
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

export async function startStandInServer(functions: FunctionHost, machines: StateMachineService, region: string, account: string): Promise<StandInServer> {
  const functionArn = (name: string): string => `arn:aws:lambda:${region}:${account}:function:${name}`
  const configuration = (name: string): Record<string, unknown> => {
    const fn = functions.get(name)!
    return {
      FunctionName: name, FunctionArn: functionArn(name), Runtime: fn.config.runtime, Role: fn.config.role, Handler: fn.config.handler,
      MemorySize: fn.config.memoryMb, Timeout: fn.config.timeoutSeconds, CodeSha256: fn.codeSha, CodeSize: fn.codeSize,
      State: 'Active', LastUpdateStatus: 'Successful', PackageType: 'Zip', Architectures: ['x86_64'],
      Environment: { Variables: fn.config.environment }
    }
  }
  const lambdaError = (res: ServerResponse, status: number, type: string, message: string): void => {
    res.writeHead(status, { 'content-type': 'application/json', 'x-amzn-errortype': type })
    res.end(JSON.stringify({ Type: 'User', message }))
  }
  const nameFromPath = (segment: string): string => {
    const decoded = decodeURIComponent(segment)
    return decoded.includes(':function:') ? decoded.split(':function:')[1].split(':')[0] : decoded
  }

  const lambda = async (req: IncomingMessage, res: ServerResponse, path: string[], body: Buffer): Promise<void> => {
    // path: ['2015-03-31', 'functions', name?, sub?]
    const [, , rawName, sub] = path
    if (req.method === 'POST' && rawName === undefined) {
      const input = JSON.parse(body.toString()) as { FunctionName: string, Runtime?: string, Role: string, Handler?: string, MemorySize?: number, Timeout?: number, Code: { ZipFile: string }, Environment?: { Variables?: Record<string, string> } }
      if (functions.get(input.FunctionName) !== undefined) return lambdaError(res, 409, 'ResourceConflictException', `Function already exist: ${input.FunctionName}`)
      const zip = Buffer.from(input.Code.ZipFile, 'base64')
      const config: FunctionConfig = { name: input.FunctionName, handler: input.Handler ?? 'handler.handler', runtime: input.Runtime ?? 'nodejs22.x', role: input.Role, memoryMb: input.MemorySize ?? 128, timeoutSeconds: input.Timeout ?? 3, environment: input.Environment?.Variables ?? {} }
      await functions.deploy(config, zip, createHash('sha256').update(zip).digest('base64'))
      res.writeHead(201, { 'content-type': 'application/json' })
      return void res.end(JSON.stringify(configuration(input.FunctionName)))
    }
    const name = nameFromPath(rawName ?? '')
    const fn = functions.get(name)
    if (fn === undefined) return lambdaError(res, 404, 'ResourceNotFoundException', `Function not found: ${functionArn(name)}`)
    if (req.method === 'GET' && sub === undefined) {
      res.writeHead(200, { 'content-type': 'application/json' })
      return void res.end(JSON.stringify({ Configuration: configuration(name), Code: { RepositoryType: 'S3', Location: 'stand-in' } }))
    }
    if (req.method === 'PUT' && sub === 'code') {
      const zip = Buffer.from((JSON.parse(body.toString()) as { ZipFile: string }).ZipFile, 'base64')
      await functions.deploy(fn.config, zip, createHash('sha256').update(zip).digest('base64'))
      res.writeHead(200, { 'content-type': 'application/json' })
      return void res.end(JSON.stringify(configuration(name)))
    }
    if (req.method === 'PUT' && sub === 'configuration') {
      const input = JSON.parse(body.toString()) as { Role?: string, Runtime?: string, Handler?: string, MemorySize?: number, Timeout?: number, Environment?: { Variables?: Record<string, string> } }
      functions.configure(name, {
        ...(input.Role !== undefined ? { role: input.Role } : {}), ...(input.Runtime !== undefined ? { runtime: input.Runtime } : {}),
        ...(input.Handler !== undefined ? { handler: input.Handler } : {}), ...(input.MemorySize !== undefined ? { memoryMb: input.MemorySize } : {}),
        ...(input.Timeout !== undefined ? { timeoutSeconds: input.Timeout } : {}), ...(input.Environment?.Variables !== undefined ? { environment: input.Environment.Variables } : {})
      })
      res.writeHead(200, { 'content-type': 'application/json' })
      return void res.end(JSON.stringify(configuration(name)))
    }
    if (req.method === 'POST' && sub === 'invocations') {
      const outcome = await functions.invoke(name, JSON.parse(body.length === 0 ? '{}' : body.toString()))
      const headers: Record<string, string> = { 'content-type': 'application/json', 'x-amz-executed-version': '$LATEST' }
      if (!outcome.ok) headers['x-amz-function-error'] = 'Unhandled'
      res.writeHead(200, headers)
      return void res.end(JSON.stringify(outcome.payload))
    }
    lambdaError(res, 404, 'UnknownOperationException', `the stand-in does not implement ${req.method} ${req.url}`)
  }

  const server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req)
      const target = req.headers['x-amz-target']
      try {
        if (typeof target === 'string' && target.startsWith('AWSStepFunctions.')) {
          const out = await machines.handle(target.slice('AWSStepFunctions.'.length), JSON.parse(body.length === 0 ? '{}' : body.toString()) as Record<string, unknown>)
          res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' })
          return void res.end(JSON.stringify(out))
        }
        const path = (req.url ?? '/').split('?')[0].split('/').filter((p) => p !== '')
        if (path[0] === '2015-03-31' && path[1] === 'functions') return await lambda(req, res, path, body)
        res.writeHead(404).end()
      } catch (error) {
        if (error instanceof SfnApiError) {
          res.writeHead(400, { 'content-type': 'application/x-amz-json-1.0' })
          return void res.end(JSON.stringify({ __type: error.type, message: error.message }))
        }
        res.writeHead(500, { 'content-type': 'application/json', 'x-amzn-errortype': 'ServiceException' })
        res.end(JSON.stringify({ message: (error as Error).message }))
      }
    })()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    endpoint: `http://127.0.0.1:${port}`,
    async stop() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}
