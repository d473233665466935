export {
  CHECKPOINT_FILE, CheckpointError, checkpointPath, prepareCheckpoint, readCheckpoint, writeCheckpoint,
  type PreparedCheckpoint
} from './checkpoint.js'
