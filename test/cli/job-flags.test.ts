/** Job flags on the command line: --patience sets early stopping (0 turns it off) and keeps a job file's other fields. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Command } from 'commander'
import { describe, expect, it } from 'vitest'
import { addJobFlags, jobConfigFromFlags, type JobFlagValues } from '../../cli/support/job-flags.js'

const parse = (args: string[]): JobFlagValues => addJobFlags(new Command().exitOverride().configureOutput({ writeErr: () => {} })).parse(args, { from: 'user' }).opts<JobFlagValues>()

describe('--patience', () => {
  it('sets early stopping, 0 turning it off; without it the default stays', () => {
    expect(jobConfigFromFlags(parse(['--patience', '0'])).earlyStopping.patience).toBe(0)
    expect(jobConfigFromFlags(parse(['--patience', '12'])).earlyStopping.patience).toBe(12)
    expect(jobConfigFromFlags(parse([])).earlyStopping.patience).toBe(5)
  })

  it('keeps the job file\'s minDelta', () => {
    const dir = mkdtempSync(join(tmpdir(), 'p2pmld-flags-'))
    try {
      const file = join(dir, 'job.json')
      writeFileSync(file, JSON.stringify({ model: 'mlp', earlyStopping: { patience: 3, minDelta: 0.01 } }))
      expect(jobConfigFromFlags(parse(['--config', file, '--patience', '0'])).earlyStopping).toEqual({ patience: 0, minDelta: 0.01 })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses a negative or fractional value, naming the flag', () => {
    expect(() => parse(['--patience', '-1'])).toThrow(/--patience must be a whole number >= 0, got '-1'/)
    expect(() => parse(['--patience', '1.5'])).toThrow(/--patience must be a whole number >= 0/)
  })
})
