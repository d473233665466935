/**
 * The set-up every e2e file shares: build once, a fleet of daemon processes, control clients
 * that are closed (and daemons stopped, temp dirs removed) after the file.
 */
import { afterAll, beforeAll } from 'vitest'
import { createControlClient, type ControlClient } from '../../../daemon/control/client.js'
import { ensureBuilt } from './build.js'
import { createDaemonFleet, type DaemonFleet, type DaemonProcess } from './daemon-process.js'

export interface FleetSuite {
  readonly fleet: DaemonFleet
  /** a control client for the daemon's socket, closed after the file */
  clientFor(daemon: Pick<DaemonProcess, 'socketPath'>): ControlClient
}

export function useDaemonFleet(prefix: string, options: { clientTimeoutMs?: number } = {}): FleetSuite {
  const fleet = createDaemonFleet(prefix)
  const clients: ControlClient[] = []
  beforeAll(async () => { await ensureBuilt() }, 120_000)
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()))
    await fleet.cleanup()
  })
  return {
    fleet,
    clientFor(daemon) {
      const client = createControlClient(daemon.socketPath, { timeoutMs: options.clientTimeoutMs ?? 10_000 })
      clients.push(client)
      return client
    }
  }
}
