/** The run report of `p2pmld train` (one process, one member, no network). */
import type { JobConfig } from '../../config/job-config.js'
import type { LocalTrainingResult } from '../training/local-training.js'
import { buildRunReport } from './build-report.js'
import type { ReportRecorder } from './report-recorder.js'
import type { RunReport } from './report-schema.js'

export const LOCAL_PEER_ID = 'local'

export function reportFromLocalTraining(config: JobConfig, result: LocalTrainingResult, recorder?: ReportRecorder): RunReport {
  return buildRunReport({
    source: 'train',
    peerId: LOCAL_PEER_ID,
    config,
    state: 'finished',
    progress: { step: result.step, epoch: result.epoch, lr: result.history.at(-1)?.lr ?? config.optimizer.lr },
    parameterCount: result.parameterCount,
    trainSamples: result.trainSize,
    result,
    history: result.history,
    epochMarks: recorder?.epochMarks(),
    membership: { version: 1, snapshot: { members: [{ peerId: LOCAL_PEER_ID, joinStep: 0, leaveStep: null }] } },
    stages: result.stages,
    lastStep: recorder?.lastStep(),
    wallMs: result.wallMs
  })
}
