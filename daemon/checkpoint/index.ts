export {
  CHECKPOINT_DIR, CHECKPOINT_FILE, CheckpointError, checkpointFileAt, checkpointPath, prepareCheckpoint, readCheckpoint, readCheckpointFile, writeCheckpoint, writeCheckpointFile,
  type PreparedCheckpoint
} from './checkpoint.js'
export { checkModelPath, EXPORT_FORMATS, exportCheckpointModel, exportSnapshotModel, ModelExportError, writeModelExport, type ExportFormat, type WrittenExport } from './model-export.js'
