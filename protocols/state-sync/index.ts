export { STATE_SYNC_PROTOCOL, MAX_FRAME_BYTES, StateSyncRequestSchema, type StateSyncRequest } from './state-sync-messages.js'
export {
  StateSyncError, StateSyncRemoteError, StateSyncRefusedError, type StateSyncErrorCode, type StateSyncRefusal
} from './state-sync-errors.js'
export { registerStateSyncServer, type StateSyncServer, type StateSyncServerOptions } from './state-sync-server.js'
export { fetchSnapshot, type FetchSnapshotOptions } from './fetch-snapshot.js'
