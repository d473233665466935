/** Stopping and starting the real broker in tests; `ensureBrokerRunning` belongs in a finally. */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

const run = promisify(execFile)

export async function stopBrokerApp(): Promise<void> {
  await run('rabbitmqctl', ['stop_app'], { timeout: 60_000 })
}

export async function startBrokerApp(): Promise<void> {
  await run('rabbitmqctl', ['start_app'], { timeout: 60_000 })
}

/** whatever happened: the broker app runs again (the node is started if it is down) */
export async function ensureBrokerRunning(): Promise<void> {
  try {
    await startBrokerApp()
  } catch {
    await run('rabbitmq-server', ['-detached'], { timeout: 60_000 }).catch(() => {})
    await run('rabbitmqctl', ['wait', '--timeout', '60', '/var/lib/rabbitmq/mnesia/rabbit@localhost.pid'], { timeout: 90_000 }).catch(() => {})
    await startBrokerApp().catch(() => {})
  }
}
