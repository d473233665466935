import type { Command } from 'commander'
import type { MetricsResult } from '../../daemon/control/methods.js'
import { addClientOptions, withClient, type ClientOptions } from '../support/daemon-target.js'
import { formatBytes, formatDuration, formatFields } from '../support/format.js'
import { action, printResult } from '../support/output.js'
import { formatStageTable } from '../support/stage-table.js'

export function formatMetrics(metrics: MetricsResult): string {
  const stages = metrics.stages.length === 0 ? 'no stage timings yet' : formatStageTable(metrics.stages)
  const { network: net, contributors: c } = metrics
  const summary = formatFields([
    ['job', metrics.jobId ?? '-'],
    ['step', String(metrics.step)],
    // the bytes are all of the job's traffic (state transfers too); a gradient is published once
    // a step for every member and delivered once per sender: '5 messages' against '10' read as lost
    ['sent', `${formatBytes(net.bytesSent)}; ${net.messagesSent} gradients published (one a step, to every member)`],
    ['received', `${formatBytes(net.bytesReceived)}; ${net.messagesReceived} gradients delivered (one per sender a step)`],
    ['contributors', `last ${c.last}, mean ${c.mean.toFixed(2)}, min ${c.min}, max ${c.max}`],
    ['rss', `${metrics.rssMiB.toFixed(1)} MiB`],
    ['refused', formatCounts(metrics.refusedConnections)],
    ['rejected', formatCounts(metrics.rejectedInputs)],
    // refusals the protocol expects (stale async gradients, requests to a peer still joining)
    ['dropped', formatCounts(metrics.droppedInputs)],
    ['uptime', formatDuration(metrics.uptimeMs)]
  ])
  return `${stages}\n\n${summary}`
}

function formatCounts(counts: Record<string, number>): string {
  const entries = Object.entries(counts)
  return entries.length === 0 ? 'none' : entries.map(([reason, n]) => `${reason} ${n}`).join(', ')
}

export function registerMetricsCommand(program: Command): void {
  addClientOptions(program.command('metrics').description('per-stage time, CPU and memory, traffic and contributors per step'))
    .action(action(async (options: ClientOptions) => {
      const metrics = await withClient(options, async (client) => await client.metrics())
      printResult(options, metrics, formatMetrics)
    }))
}
