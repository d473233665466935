import type { Command } from 'commander'
import type { StatusResult } from '../../daemon/control/methods.js'
import { addClientOptions, withClient, type ClientOptions } from '../support/daemon-target.js'
import { formatDuration, formatFields, formatLearningRate, formatLoss, formatPercent } from '../support/format.js'
import { action, printResult } from '../support/output.js'

/**
 * The epoch as people count it, from 1: the one in progress while a job waits, trains or is
 * paused (status.epoch is its 0-based index), the number completed once it ended.
 */
export function formatEpoch(status: Pick<StatusResult, 'jobId' | 'state' | 'epoch'>): string {
  if (status.jobId === null) return '-'
  return status.state === 'finished' || status.state === 'stopped' || status.state === 'failed' ? `${status.epoch} completed` : String(status.epoch + 1)
}

/** Why a job ended, as a person reads it (StatusResult.stopReason). */
const STOP_REASONS: Record<string, string> = {
  epochs: 'the last epoch',
  'early-stopping': 'early stopping (validation loss stopped improving)'
}

/** `p2pmld status`'s text: one field per line; the job's end (test accuracy, why) once it finished. */
export function formatStatus(status: StatusResult): string {
  return formatFields([
    ['peer', status.peerId],
    ['addresses', status.addresses.length === 0 ? '-' : status.addresses.join(', ')],
    ['job', status.jobId === null ? `- (${status.state})` : `${status.jobId} (${status.state})`],
    ['step', String(status.step)],
    ['epoch', formatEpoch(status)],
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
