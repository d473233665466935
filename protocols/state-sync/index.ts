export { STATE_SYNC_PROTOCOL, MAX_FRAME_BYTES, MAX_STATE_RANGES, StateSyncRequestSchema, type StateSyncRequest } from './state-sync-messages.js'
export {
  StateSyncError, StateSyncRemoteError, StateSyncRefusedError, type StateSyncErrorCode, type StateSyncRefusal
} from './state-sync-errors.js'
export { registerStateSyncServer, type StateSyncServer, type StateSyncServerOptions } from './state-sync-server.js'
export { fetchSnapshot, fetchSnapshotRange, type FetchedRange, type FetchSnapshotOptions } from './fetch-snapshot.js'
export { fetchStateFromDonors, type DonorFetch, type FetchFromDonorsOptions } from './fetch-from-donors.js'
