import type { Command } from 'commander'
import { ControlTimeoutError, DaemonNotRunningError } from '../../daemon/control/client.js'
import { addClientOptions, resolveSocketPath, withClient, type ClientOptions } from '../support/daemon-target.js'
import { waitUntilStopped } from '../support/wait-stopped.js'
import { action, printResult } from '../support/output.js'

interface StopOptions extends ClientOptions {
  /** false under --no-wait */
  readonly wait?: boolean
}

export function registerStopCommand(program: Command): void {
  addClientOptions(program.command('stop').description('shut the daemon down (it finishes its step, saves state and leaves the job); returns once its process has exited'))
    .option('--no-wait', 'return as soon as the daemon has been asked, not once it has stopped')
    .addHelpText('after', '\n--timeout also bounds the wait for the daemon to stop.')
    .action(action(async (options: StopOptions) => {
      const socketPath = resolveSocketPath(options)
      // one --timeout for the whole command: the answer, then the wait for the exit
      const deadline = Date.now() + Number(options.timeout ?? '30000')
      const asked = await withClient(options, async (client) => await client.shutdown()).catch((error: unknown) => {
        // nothing listens on the socket: the goal of a stop is met (a deploy script's stop before a
        // start, or a second stop), so it says so and succeeds rather than suggest starting one
        if (error instanceof DaemonNotRunningError) return undefined
        // the request may have arrived all the same: say so rather than leave it at 'did not answer'
        if (error instanceof ControlTimeoutError) throw new Error(`${error.message}: it may still stop (it finishes its step and saves its state first); see whether it runs with 'p2pmld status', or wait longer with --timeout <ms>`)
        throw error
      })
      if (asked === undefined) {
        printResult(options, { stopped: true, running: false }, () => `no daemon is running at ${socketPath}: nothing to stop`)
        return
      }
      if (options.wait === false) {
        printResult(options, asked, () => `daemon at ${socketPath} is stopping`)
        return
      }
      await waitUntilStopped({ socketPath, pid: asked.pid, deadline, timeoutMs: Number(options.timeout ?? '30000') })
      printResult(options, { ...asked, stopped: true }, () => `daemon at ${socketPath} stopped${asked.pid !== undefined ? ` (process ${asked.pid} exited)` : ''}`)
    }))
}
