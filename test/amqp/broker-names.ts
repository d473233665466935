/** What the real broker holds, read with rabbitmqctl (the management plugin is not enabled here). */
import { execFileSync } from 'node:child_process'

/** queue or exchange names on the broker containing `fragment` */
export function brokerNames(kind: 'queues' | 'exchanges', fragment: string): string[] {
  return execFileSync('rabbitmqctl', ['-q', `list_${kind}`, 'name'], { encoding: 'utf8', timeout: 30_000 })
    .split('\n').map((n) => n.trim()).filter((n) => n.includes(fragment))
}

/** consumers of the queue named `queue` on the broker (undefined: no such queue) */
export function queueConsumers(queue: string): number | undefined {
  const line = execFileSync('rabbitmqctl', ['-q', 'list_queues', 'name', 'consumers'], { encoding: 'utf8', timeout: 30_000 })
    .split('\n').map((l) => l.trim().split(/\s+/)).find(([name]) => name === queue)
  return line === undefined ? undefined : Number(line[1])
}

export const BROKER_URL = process.env.P2PMLD_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672'
