import type { Command } from 'commander'
import type { StatusResult } from '../../daemon/control/methods.js'
import { addClientOptions, withClient, type ClientOptions } from '../support/daemon-target.js'
import { formatDuration, formatFields, formatLearningRate, formatLoss, formatPercent } from '../support/format.js'
import { action, printResult } from '../support/output.js'
import { formatEpochShare } from '../support/progress.js'

/**
 * The epoch as people count it, from 1: the one in progress while a job waits, trains or is
 * paused (status.epoch is its 0-based index), of the job's limit and how far into it
 * (`3 of 30, 40% (16/41 steps)`), the number completed once it ended.
 */
export function formatEpoch(status: Pick<StatusResult, 'jobId' | 'state' | 'epoch'> & Partial<Pick<StatusResult, 'epochs' | 'stepInEpoch' | 'stepsInEpoch'>>): string {
  if (status.jobId === null) return '-'
  if (status.state === 'finished' || status.state === 'stopped' || status.state === 'failed') return `${status.epoch} completed`
  const of = status.epochs === undefined || status.epochs === null ? '' : ` of ${status.epochs}`
  const share = status.stepInEpoch === undefined || status.stepInEpoch === null || status.stepsInEpoch === undefined || status.stepsInEpoch === null
    ? ''
    : `, ${formatEpochShare(status.stepInEpoch, status.stepsInEpoch)}`
  return `${status.epoch + 1}${of}${share}`
}

/**
 * `6512 samples/s, ~4m 40s left (if every epoch runs)`, without the proviso when early stopping is
 * off (every epoch runs); null before a few steps were timed or while the job does not train
 */
export function formatStatusPace(status: Pick<StatusResult, 'samplesPerSecond' | 'etaMs' | 'earlyStopping'>): string | null {
  if (status.samplesPerSecond === null) return null
  const proviso = status.earlyStopping === false ? '' : ' (if every epoch runs)'
  const left = status.etaMs === null ? '' : `, ~${formatDuration(status.etaMs)} left${proviso}`
  return `${Math.round(status.samplesPerSecond)} samples/s${left}`
}

/** Why a job ended, as a person reads it (StatusResult.stopReason). */
const STOP_REASONS: Record<string, string> = {
  epochs: 'the last epoch',
  'early-stopping': 'early stopping (validation loss stopped improving)'
}

/** `p2pmld status`'s text: one field per line; the job's end (test accuracy, why) once it finished. */
export function formatStatus(status: StatusResult): string {
  const pace = formatStatusPace(status)
  return formatFields([
    ['peer', status.peerId],
    ['addresses', status.addresses.length === 0 ? '-' : status.addresses.join(', ')],
    ['job', status.jobId === null ? `- (${status.state})` : `${status.jobId} (${status.state})`],
    ['step', String(status.step)],
    ['epoch', formatEpoch(status)],
    ...(pace !== null ? [['pace', pace] as [string, string]] : []),
    ['loss', status.loss === null ? '-' : formatLoss(status.loss)],
    ['validation accuracy', formatPercent(status.accuracy)],
    ...(status.testAccuracy !== null ? [['test accuracy', formatPercent(status.testAccuracy)] as [string, string]] : []),
    ...(status.stopReason !== null ? [['stopped by', STOP_REASONS[status.stopReason] ?? status.stopReason] as [string, string]] : []),
    ['learning rate', status.learningRate === null ? '-' : formatLearningRate(status.learningRate)],
    ['members', String(status.liveMembers)],
    ...(status.waiting !== null ? [['waiting', status.waiting] as [string, string]] : []),
    ['uptime', formatDuration(status.uptimeMs)]
  ])
}

export function registerStatusCommand(program: Command): void {
  addClientOptions(program.command('status').description("show the daemon's peer, job and training progress"))
    .action(action(async (options: ClientOptions) => {
      const status = await withClient(options, async (client) => await client.status())
      printResult(options, status, formatStatus)
    }))
}
