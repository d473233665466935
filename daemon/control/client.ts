/**
 * Typed client for the control socket: one connection, opened on the first call, JSON-RPC 2.0
 * with newline framing; results are validated against the shared schemas.
 */
import { lstatSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { daemonFlagFor } from '../../config/daemon-config.js'
import { createJSONRPCErrorResponse, isJSONRPCResponse, JSONRPCClient, type JSONRPCResponse } from 'json-rpc-2.0'
import type { JobConfigInput } from '../../config/job-config.js'
import type { RunReport } from '../report/report-schema.js'
import { createLineSplitter } from './line-splitter.js'
import {
  CONTROL_METHODS,
  RPC_ERROR,
  type CheckpointParams,
  type CheckpointResult,
  type ExportParamsInput,
  type ExportResult,
  type ControlMethod,
  type ControlParamsInput,
  type ControlResult,
  type JobControlParams,
  type JobControlResult,
  type MetricsResult,
  type PeersResult,
  type ShutdownResult,
  type StatusResult,
  type SubmitJobResult
} from './methods.js'

export class DaemonNotRunningError extends Error {
  override name = 'DaemonNotRunningError'
}

/** The daemon answered with a JSON-RPC error; code is one of RPC_ERROR. */
export class ControlRpcError extends Error {
  override name = 'ControlRpcError'
  constructor(readonly code: number, message: string, readonly data?: unknown) {
    super(message)
  }
}

export class ControlConnectionError extends Error {
  override name = 'ControlConnectionError'
}

/**
 * The daemon refused the connection as busy (-32011: at its connection cap, none idle) before it
 * read any request; the client sends the call again a few times before it throws this
 */
export class ControlBusyError extends ControlConnectionError {
  override name = 'ControlBusyError'
}

/** tries of a call the daemon refused as busy, the waits between them growing by this much */
const BUSY_TRIES = 5
const BUSY_BACKOFF_MS = 100

export class ControlTimeoutError extends Error {
  override name = 'ControlTimeoutError'
}

export class ControlProtocolError extends Error {
  override name = 'ControlProtocolError'
}

export interface ControlClientOptions {
  /** per-call timeout; default 30 s */
  readonly timeoutMs?: number
  /** longest response line accepted; default 64 MiB */
  readonly maxLineBytes?: number
}

export interface ControlClient {
  call<M extends ControlMethod>(method: M, params?: ControlParamsInput<M>): Promise<ControlResult<M>>
  status(): Promise<StatusResult>
  peers(): Promise<PeersResult>
  submitJob(config: JobConfigInput): Promise<SubmitJobResult>
  stopJob(params?: JobControlParams): Promise<JobControlResult>
  pauseJob(params?: JobControlParams): Promise<JobControlResult>
  resumeJob(params?: JobControlParams): Promise<JobControlResult>
  metrics(): Promise<MetricsResult>
  saveCheckpoint(params?: CheckpointParams): Promise<CheckpointResult>
  exportModel(params: ExportParamsInput): Promise<ExportResult>
  report(): Promise<RunReport>
  shutdown(): Promise<ShutdownResult>
  close(): Promise<void>
}

const TIMEOUT_CODE = -32099
/** json-rpc-2.0's DefaultErrorCode: a client-side failure, never sent by our server */
const CLIENT_FAILURE_CODE = 0

export function createControlClient(socketPath: string, options: ControlClientOptions = {}): ControlClient {
  const timeoutMs = options.timeoutMs ?? 30_000
  const maxLineBytes = options.maxLineBytes ?? 64 * 1024 * 1024
  let socket: Socket | undefined
  let connecting: Promise<Socket> | undefined
  let lostReason: string | undefined
  /** the last connection was refused as busy (-32011) */
  let refusedBusy = false

  // json-rpc-2.0 turns send failures and rejectAllPendingRequests into code-0 error responses;
  // keep the real error per request id to throw a typed one
  const sendErrors = new Map<number, Error>()
  const rpc = new JSONRPCClient(async (payload: { id: number }) => {
    try {
      const s = await open()
      s.write(JSON.stringify(payload) + '\n')
    } catch (err) {
      sendErrors.set(payload.id, err as Error)
      throw err
    }
  })
  const requester = rpc.timeout(timeoutMs, (id) => createJSONRPCErrorResponse(id, TIMEOUT_CODE, 'timeout'))

  const open = async (): Promise<Socket> => {
    if (socket !== undefined && !socket.destroyed) return socket
    connecting ??= new Promise<Socket>((resolve, reject) => {
      const s = connect(socketPath)
      const splitter = createLineSplitter({
        maxLineBytes,
        onLine: (line) => {
          let payload: unknown
          try {
            payload = JSON.parse(line)
          } catch {
            return lose(s, `the daemon at ${socketPath} sent a line that is not JSON`)
          }
          const responses = Array.isArray(payload) ? payload : [payload]
          for (const response of responses) {
            if (typeof response !== 'object' || response === null || !isJSONRPCResponse(response)) continue
            // an error for no request (id null): the daemon refused the connection or a line (too
            // large, too many connections) and closes it; its message is the reason to show
            if (response.id === null && response.error !== undefined) {
              refusedBusy = response.error.code === RPC_ERROR.SERVER_BUSY
              return lose(s, response.error.message)
            }
            rpc.receive(response)
          }
        },
        onOverflow: () => lose(s, `the daemon at ${socketPath} sent a response longer than ${maxLineBytes} bytes`)
      })
      s.once('connect', () => {
        s.off('error', onConnectError)
        s.on('error', (err) => lose(s, err.message))
        socket = s
        lostReason = undefined
        refusedBusy = false
        resolve(s)
      })
      const onConnectError = (err: NodeJS.ErrnoException): void => {
        // a path that is something else than a socket (a job file given as --socket) is no daemon to start there
        const other = err.code === 'ECONNREFUSED' ? lstatSync(socketPath, { throwIfNoEntry: false }) : undefined
        if (other !== undefined && !other.isSocket()) {
          reject(new ControlConnectionError(`${socketPath} is not a control socket (it is a ${other.isDirectory() ? 'directory' : 'file'}): give the daemon's socket with --socket, or its data dir with --data-dir`))
        } else if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
          reject(new DaemonNotRunningError(`no daemon is running at ${socketPath}: start one with \`p2pmld start ${daemonFlagFor(socketPath)}\``))
        } else {
          reject(new ControlConnectionError(`cannot connect to the daemon at ${socketPath}: ${err.message}`))
        }
      }
      s.once('error', onConnectError)
      s.on('data', (chunk: Buffer) => splitter.push(chunk))
      s.on('close', () => lose(s, 'the daemon closed the connection'))
    }).finally(() => { connecting = undefined })
    return await connecting
  }

  const lose = (s: Socket, reason: string): void => {
    if (socket === s) {
      socket = undefined
      lostReason = reason
      rpc.rejectAllPendingRequests(reason)
    }
    s.destroy()
  }

  const call = async <M extends ControlMethod>(method: M, params?: ControlParamsInput<M>): Promise<ControlResult<M>> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await callOnce(method, params)
      } catch (error) {
        // refused at the connection, before any request was read: sending it again is safe
        if (!(error instanceof ControlBusyError) || attempt >= BUSY_TRIES) throw error
        await new Promise((resolve) => setTimeout(resolve, BUSY_BACKOFF_MS * attempt))
      }
    }
  }

  const callOnce = async <M extends ControlMethod>(method: M, params?: ControlParamsInput<M>): Promise<ControlResult<M>> => {
    const requestId = nextId()
    const response: JSONRPCResponse = await requester.requestAdvanced({ jsonrpc: '2.0', id: requestId, method, params: params ?? {} })
    const sendError = sendErrors.get(requestId)
    sendErrors.delete(requestId)
    if (response.error !== undefined) {
      if (response.error.code === CLIENT_FAILURE_CODE) {
        if (sendError instanceof DaemonNotRunningError || sendError instanceof ControlConnectionError) throw sendError
        if (refusedBusy) throw new ControlBusyError(`the daemon at ${socketPath} refused ${method}: ${lostReason ?? response.error.message}`)
        throw new ControlConnectionError(`lost the connection to the daemon at ${socketPath} during ${method}: ${lostReason ?? sendError?.message ?? response.error.message}`)
      }
      if (response.error.code === TIMEOUT_CODE) throw new ControlTimeoutError(`the daemon at ${socketPath} did not answer ${method} within ${timeoutMs} ms`)
      throw new ControlRpcError(response.error.code, response.error.message, response.error.data)
    }
    const parsed = CONTROL_METHODS[method].result.safeParse(response.result)
    if (!parsed.success) {
      const issue = parsed.error.issues[0]
      throw new ControlProtocolError(`the daemon answered ${method} with an unexpected result (${issue.path.join('.') || '(root)'}: ${issue.message}); are the daemon and the CLI the same version?`)
    }
    return parsed.data as ControlResult<M>
  }

  let id = 0
  const nextId = (): number => ++id

  return {
    call,
    status: async () => await call('status'),
    peers: async () => await call('peers'),
    submitJob: async (config) => await call('job.submit', { config }),
    stopJob: async (params) => await call('job.stop', params),
    pauseJob: async (params) => await call('job.pause', params),
    resumeJob: async (params) => await call('job.resume', params),
    metrics: async () => await call('metrics'),
    saveCheckpoint: async (params) => await call('checkpoint.save', params),
    exportModel: async (params) => await call('model.export', params),
    report: async () => await call('report'),
    shutdown: async () => await call('shutdown'),
    async close(): Promise<void> {
      const s = socket
      socket = undefined
      if (s === undefined || s.destroyed) return
      rpc.rejectAllPendingRequests('the client was closed')
      await new Promise<void>((resolve) => {
        s.once('close', () => resolve())
        s.end()
        s.destroySoon()
      })
    }
  }
}
