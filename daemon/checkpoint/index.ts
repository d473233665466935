export {
  CHECKPOINT_FILE, CheckpointError, checkpointPath, prepareCheckpoint, readCheckpoint, readCheckpointFile, writeCheckpoint, writeCheckpointFile,
  type PreparedCheckpoint
} from './checkpoint.js'
export { EXPORT_FORMATS, exportCheckpointModel, exportSnapshotModel, ModelExportError, writeModelExport, type ExportFormat, type WrittenExport } from './model-export.js'
