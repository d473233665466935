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

describe('a job file with flags laid over it', () => {
  const withFile = (fields: object, run: (file: string) => void): void => {
    const dir = mkdtempSync(join(tmpdir(), 'p2pmld-flags-'))
    try {
      const file = join(dir, 'job.yaml')
      writeFileSync(file, JSON.stringify(fields))
      run(file)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }

  it('is checked as a whole: a flag fixes what the file alone gets wrong, as the file\'s error tells it to', () => {
    withFile({ model: 'mlp', aggregation: { rule: 'trimmed-mean', f: 5 }, minPeers: 2 }, (file) => {
      // alone, the file is refused, named, with the flag that fixes it
      expect(() => jobConfigFromFlags(parse(['--config', file]))).toThrow(new RegExp(`job file ${file}:[\\s\\S]*minPeers: trimmed-mean with f=5 needs at least 11 peers: set minPeers \\(--min-peers\\) to 11 or more`))
      // it said 'invalid job file ...' and refused the fix
      const config = jobConfigFromFlags(parse(['--config', file, '--min-peers', '11']))
      expect(config.minPeers).toBe(11)
      expect(config.aggregation).toMatchObject({ rule: 'trimmed-mean', f: 5 })
      // a flag that does not fix it: the error names the file and the flags
      expect(() => jobConfigFromFlags(parse(['--config', file, '--min-peers', '5']))).toThrow(new RegExp(`job config \\(${file} \\+ flags\\):[\\s\\S]*set minPeers \\(--min-peers\\) to 11`))
    })
  })

  it('keeps the file\'s optimizer settings under --lr, its type sgd when the file gives none', () => {
    withFile({ model: 'mlp', optimizer: { momentum: 0.5 } }, (file) => {
      expect(jobConfigFromFlags(parse(['--config', file, '--lr', '0.2'])).optimizer).toMatchObject({ type: 'sgd', lr: 0.2, momentum: 0.5 })
    })
    withFile({ model: 'mlp', optimizer: { type: 'adam', lr: 0.001, beta1: 0.8 } }, (file) => {
      expect(jobConfigFromFlags(parse(['--config', file, '--lr', '0.01'])).optimizer).toMatchObject({ type: 'adam', lr: 0.01, beta1: 0.8 })
    })
  })
})
