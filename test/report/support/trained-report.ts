/**
 * A run report from a real, short `p2pmld train` run (MLP on 1,024 bundled MNIST digits, real
 * ONNX Runtime), built the way the train command builds it.
 */
import { parseJobConfig, type JobConfig } from '../../../config/job-config.js'
import { createLogger } from '../../../daemon/logger.js'
import { reportFromLocalTraining } from '../../../daemon/report/local-report.js'
import { createReportRecorder } from '../../../daemon/report/report-recorder.js'
import type { RunReport } from '../../../daemon/report/report-schema.js'
import { runLocalTraining, type LocalTrainingResult } from '../../../daemon/training/local-training.js'

export interface TrainedReport {
  readonly config: JobConfig
  readonly result: LocalTrainingResult
  readonly report: RunReport
}

export async function trainForReport(epochs = 3): Promise<TrainedReport> {
  const config = parseJobConfig({ id: 'report-test', model: 'mlp', epochs, batchSize: 64, trainSamples: 1024, optimizer: { type: 'sgd', lr: 0.05, momentum: 0.9 }, compression: { codec: 'none' }, aggregation: { rule: 'mean', f: 0 }, earlyStopping: { patience: 100 } }, 'report test job')
  const recorder = createReportRecorder()
  const result = await runLocalTraining(config, { computeThreads: 1, log: createLogger('silent', { component: 'test' }), events: recorder.events })
  if (result === undefined) throw new Error('local training did not finish')
  return { config, result, report: reportFromLocalTraining(config, result, recorder) }
}
