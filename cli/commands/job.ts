import type { Command } from 'commander'
import { jobConfigWarnings } from '../../config/job-config.js'
import type { ControlClient } from '../../daemon/control/client.js'
import type { JobControlParams, JobControlResult } from '../../daemon/control/methods.js'
import { addClientOptions, withClient, type ClientOptions } from '../support/daemon-target.js'
import { addJobFlags, hasJobFlags, jobConfigFromFlags, type JobFlagValues } from '../support/job-flags.js'
import { action, printResult } from '../support/output.js'

type JobOptions = ClientOptions & { readonly job?: string }

const CONTROLS = [
  ['stop', 'stop this daemon\'s part in the running job: it leaves the job, whose other members go on without it, and stays up', 'stopped', (c: ControlClient, p: JobControlParams) => c.stopJob(p)],
  ['pause', 'pause the whole job: every member stops before step N, two steps after the coordinator gets the request (mode async: right after the next averaging round); the reply names N; job resume goes on', 'paused', (c: ControlClient, p: JobControlParams) => c.pauseJob(p)],
  ['resume', 'resume a paused job', 'resumed', (c: ControlClient, p: JobControlParams) => c.resumeJob(p)]
] as const

/** What a job control did, in words: the state in brackets only where it says more than the verb ('stopped (stopped)') */
export function describeControl(verb: typeof CONTROLS[number][2], r: JobControlResult): string {
  // it read 'job J stopped (finished)', as if the stop had ended it; a second stop read 'job J stopped'
  if (verb === 'stopped' && r.state === 'finished') return `job ${r.jobId} had finished already: nothing to stop (p2pmld job submit gives this daemon a new job)`
  if (verb === 'stopped' && r.unchanged === true) return `job ${r.jobId} was stopped already: nothing to stop`
  // a pause decided for a step the job has not reached: it read 'paused at step 80' at step 42
  if (verb === 'paused' && r.effectiveStep !== undefined && r.state !== 'paused') return `job ${r.jobId} pauses before step ${r.effectiveStep}, job-wide (${r.state} until then)`
  // the decision is job-wide; 'on every member' read as done on each, where a member down then was not
  return `job ${r.jobId} ${verb}${r.effectiveStep !== undefined ? ` at step ${r.effectiveStep}, job-wide` : ''}${r.state === verb ? '' : ` (${r.state})`}`
}

export function registerJobCommands(program: Command): void {
  const job = program.command('job').description('submit and control training jobs')

  // the job flags of start (its job file is the argument: --config names the daemon config here)
  addJobFlags(addClientOptions(job.command('submit [file]').description('submit a job to the daemon: a job file (YAML or JSON), the job flags start takes, or both (the flags override the file\'s fields)')), { configFlag: false })
    .action(action(async (file: string | undefined, options: ClientOptions & Omit<JobFlagValues, 'config'>) => {
      const { config: _daemonConfig, ...flags } = options
      // it read commander's "missing required argument 'file'", and "unknown option '--model'" for the flags start takes
      if (file === undefined && !hasJobFlags(flags)) throw new Error('job submit needs a job: a job file (p2pmld job submit job.yaml) or job flags (p2pmld job submit --model mlp --epochs 3 --min-peers 3), or both')
      // parsed here first so a bad file or flag is reported with its path, line or name, before any connection
      const config = jobConfigFromFlags({ ...flags, config: file })
      const result = await withClient(options, async (client) => await client.submitJob(config))
      // settings known to train badly: the daemon logs them where this user may not look
      const warnings = jobConfigWarnings(config)
      printResult(options, warnings.length === 0 ? result : { ...result, warnings }, (r) => `submitted job ${r.jobId} (${r.state})`)
      if (options.json !== true) for (const warning of warnings) process.stderr.write(`warning: ${warning}\n`)
    }))

  for (const [name, description, verb, call] of CONTROLS) {
    addClientOptions(job.command(name).description(description))
      .option('--job <id>', 'act only if this is the running job')
      .action(action(async (options: JobOptions) => {
        const params: JobControlParams = options.job === undefined ? {} : { jobId: options.job }
        const result: JobControlResult = await withClient(options, async (client) => await call(client, params))
        printResult(options, result, (r) => describeControl(verb, r))
      }))
  }
}
