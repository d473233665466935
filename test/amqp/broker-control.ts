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

/** what a restart did, for a failing test's message: times in ms from its start, errors as rabbitmqctl said */
export interface BrokerRestart {
  stoppedAtMs?: number
  stopError?: string
  startedAtMs?: number
  startError?: string
}

/**
 * Stop the broker's app, wait `pauseMs`, start it again. The start runs whatever the stop did: a
 * `stop_app` that timed out or failed may still have stopped the app, and a restart that gave up
 * there left the peers reconnecting to a stopped broker until the test's timeout (suspected in a
 * CI run that timed out at 240 s without a word). `record` is filled in as it goes.
 */
export async function restartBrokerApp(pauseMs: number, record: BrokerRestart = {}): Promise<BrokerRestart> {
  const t0 = Date.now()
  try {
    await stopBrokerApp()
    record.stoppedAtMs = Date.now() - t0
  } catch (error) {
    record.stopError = (error as Error).message
  }
  await new Promise((resolve) => setTimeout(resolve, pauseMs))
  try {
    await startBrokerApp()
  } catch (error) {
    record.startError = (error as Error).message
    await ensureBrokerRunning()
  }
  record.startedAtMs = Date.now() - t0
  return record
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
