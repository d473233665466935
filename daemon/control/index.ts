export * from './methods.js'
export { createControlServer, DEFAULT_MAX_LINE_BYTES, type ControlServer, type ControlServerOptions } from './server.js'
export {
  createControlClient,
  ControlBusyError,
  ControlConnectionError,
  ControlProtocolError,
  ControlRpcError,
  ControlTimeoutError,
  DaemonNotRunningError,
  type ControlClient,
  type ControlClientOptions
} from './client.js'
export { ControlSocketInUseError, ControlSocketPathError, isSocketLive, prepareSocketPath } from './socket-file.js'
