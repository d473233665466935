/** Text for people: aligned tables, key/value blocks, sizes and durations. */
import { formatLearningRate, formatLoss } from '../../daemon/report/format-metrics.js'

export function formatTable(headers: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = headers.map((header, column) => Math.max(header.length, ...rows.map((row) => (row[column] ?? '').length)))
  const line = (cells: readonly string[]): string => cells
    .map((cell, column) => column === cells.length - 1 ? cell : cell.padEnd(widths[column]))
    .join('  ')
    .trimEnd()
  return [line(headers), ...rows.map(line)].join('\n')
}

export function formatFields(fields: ReadonlyArray<readonly [string, string]>): string {
  const width = Math.max(...fields.map(([key]) => key.length))
  return fields.map(([key, value]) => `${key.padEnd(width)}  ${value}`).join('\n')
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`
  let seconds = Math.floor(ms / 1000)
  const parts: string[] = []
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['m', 60]] as const) {
    if (seconds >= size) {
      parts.push(`${Math.floor(seconds / size)}${unit}`)
      seconds %= size
    }
  }
  parts.push(`${seconds}s`)
  return parts.slice(0, 2).join(' ')
}

export { formatSeconds } from '../../daemon/report/format-seconds.js'
export { formatLearningRate, formatLoss } from '../../daemon/report/format-metrics.js'

/** An epoch's end for people: its train loss, validation loss and accuracy and learning rate, joined by `separator`. */
export function formatEpochMetrics(e: { readonly trainLoss: number, readonly validationLoss: number, readonly validationAccuracy: number, readonly lr: number }, separator = '  '): string {
  return [`train loss ${formatLoss(e.trainLoss)}`, `val loss ${formatLoss(e.validationLoss)}`, `val acc ${(e.validationAccuracy * 100).toFixed(2)} %`, `lr ${formatLearningRate(e.lr)}`].join(separator)
}

export function formatPercent(fraction: number | null): string {
  return fraction === null ? '-' : `${(fraction * 100).toFixed(2)} %`
}

export function formatAge(timestampMs: number | null, nowMs = Date.now()): string {
  return timestampMs === null ? 'never' : `${formatDuration(Math.max(0, nowMs - timestampMs))} ago`
}
