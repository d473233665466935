/**
 * One request line in, one response line out: JSON-RPC 2.0 envelope checks, zod-validated
 * params, dispatch to ControlHandlers, and errors mapped to JSON-RPC codes. No sockets here.
 */
import {
  createJSONRPCErrorResponse,
  JSONRPCErrorException,
  JSONRPCServer,
  type JSONRPCID,
  type JSONRPCRequest,
  type JSONRPCResponse
} from 'json-rpc-2.0'
import type { Logger } from 'pino'
import { z } from 'zod'
import { nearest, suggestKey } from '../../config/config-errors.js'
import {
  CONTROL_METHOD_NAMES,
  CONTROL_METHODS,
  ControlMethodError,
  dispatchControlMethod,
  RPC_ERROR,
  type ControlHandlers,
  type ControlMethod
} from './methods.js'

export interface ControlRpc {
  /** the serialized response, or null when nothing is to be answered (notifications) */
  handleLine(line: string): Promise<string | null>
}

/** a batch larger than this is refused whole */
export const MAX_BATCH_REQUESTS = 64

const EnvelopeSchema = z.object({
  jsonrpc: z.literal('2.0'),
  method: z.string().min(1).max(128),
  id: z.union([z.string().max(256), z.number().finite(), z.null()]).optional(),
  params: z.union([z.record(z.string(), z.unknown()), z.array(z.unknown())]).optional()
}).strict()

export function createControlRpc(handlers: ControlHandlers, logger: Logger): ControlRpc {
  const server = new JSONRPCServer({ errorListener: (message, data) => logger.debug({ err: data }, message) })
  server.mapErrorToJSONRPCErrorResponse = (id: JSONRPCID, error: unknown) => {
    if (error instanceof JSONRPCErrorException || error instanceof ControlMethodError) {
      return createJSONRPCErrorResponse(id, error.code, error.message, error.data)
    }
    return createJSONRPCErrorResponse(id, RPC_ERROR.INTERNAL_ERROR, `internal error: ${errorMessage(error)}`)
  }
  server.handleMethodNotFound = async (request: JSONRPCRequest) => request.id === undefined
    ? null
    : createJSONRPCErrorResponse(request.id, RPC_ERROR.METHOD_NOT_FOUND,
      `unknown method "${request.method}"${didYouMean(request.method)}: use one of ${CONTROL_METHOD_NAMES.join(', ')}`)

  for (const method of CONTROL_METHOD_NAMES) {
    server.addMethod(method, (params: unknown) => callMethod(handlers, logger, method, params))
  }

  const handleOne = async (payload: unknown): Promise<JSONRPCResponse | null> => {
    const envelope = EnvelopeSchema.safeParse(payload)
    if (!envelope.success) {
      return createJSONRPCErrorResponse(idOf(payload), RPC_ERROR.INVALID_REQUEST,
        `invalid request: ${describeIssues(EnvelopeSchema, envelope.error)} (expected {"jsonrpc":"2.0","method":...,"params":{...},"id":...})`)
    }
    return await server.receive(envelope.data as JSONRPCRequest)
  }

  return {
    async handleLine(line: string): Promise<string | null> {
      if (line.trim() === '') return null
      let payload: unknown
      try {
        payload = JSON.parse(line)
      } catch (err) {
        return JSON.stringify(createJSONRPCErrorResponse(null, RPC_ERROR.PARSE_ERROR, `parse error: the request is not valid JSON (${errorMessage(err)})`))
      }
      if (!Array.isArray(payload)) {
        const response = await handleOne(payload)
        return response === null ? null : JSON.stringify(response)
      }
      if (payload.length === 0 || payload.length > MAX_BATCH_REQUESTS) {
        return JSON.stringify(createJSONRPCErrorResponse(null, RPC_ERROR.INVALID_REQUEST,
          `invalid request: a batch must hold 1 to ${MAX_BATCH_REQUESTS} requests, got ${payload.length}`))
      }
      const responses = (await Promise.all(payload.map(handleOne))).filter((r): r is JSONRPCResponse => r !== null)
      return responses.length === 0 ? null : JSON.stringify(responses)
    }
  }
}

async function callMethod(handlers: ControlHandlers, logger: Logger, method: ControlMethod, rawParams: unknown): Promise<unknown> {
  if (Array.isArray(rawParams)) {
    throw new JSONRPCErrorException(`invalid params for ${method}: pass params by name as an object, not an array`, RPC_ERROR.INVALID_PARAMS)
  }
  const parsed = CONTROL_METHODS[method].params.safeParse(rawParams ?? {})
  if (!parsed.success) {
    throw new JSONRPCErrorException(`invalid params for ${method}: ${describeIssues(CONTROL_METHODS[method].params, parsed.error)}`, RPC_ERROR.INVALID_PARAMS,
      { issues: parsed.error.issues.map((issue) => ({ path: issue.path.map(String).join('.'), message: issue.message })) })
  }
  try {
    return await dispatchControlMethod(handlers, method, parsed.data as never)
  } catch (err) {
    if (err instanceof ControlMethodError) throw err
    logger.error({ err, method }, 'control method failed')
    throw new JSONRPCErrorException(`internal error in ${method}: ${errorMessage(err)}`, RPC_ERROR.INTERNAL_ERROR)
  }
}

/** each issue as `path: message`; an unknown field with the nearest valid one (as the CLI's config errors do) */
function describeIssues(schema: z.ZodType, error: z.ZodError): string {
  return error.issues.map((issue) => {
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((k) => {
        const hint = suggestKey(schema, issue.path, k)
        return `unknown field ${[...issue.path, k].join('.')}${hint === '' ? '' : `: ${hint}`}`
      }).join('; ')
    }
    const path = issue.path.length === 0 ? '(root)' : issue.path.map(String).join('.')
    return `${path}: ${issue.message}`
  }).join('; ')
}

/** ' (did you mean job.pause?)' for a misspelt method name, else '' */
function didYouMean(method: string): string {
  const near = nearest(method, CONTROL_METHOD_NAMES)
  return near.length === 0 ? '' : ` (did you mean ${near.join(' or ')}?)`
}

function idOf(payload: unknown): JSONRPCID {
  if (typeof payload !== 'object' || payload === null) return null
  const id = (payload as { id?: unknown }).id
  return typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id)) ? id : null
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
