export {
  CHECKPOINT_FILE, CheckpointError, checkpointPath, prepareCheckpoint, readCheckpoint, readCheckpointFile, writeCheckpoint, writeCheckpointFile,
  type PreparedCheckpoint
} from './checkpoint.js'
