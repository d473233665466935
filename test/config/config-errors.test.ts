/** Config mistakes name the fix: the nearest valid key, the allowed values of an enum. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { editDistance, nearest } from '../../config/config-errors.js'
import { ConfigError, parseJobConfig } from '../../config/job-config.js'
import { loadDaemonConfig } from '../../config/load.js'

function message(fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return (err as Error).message
  }
  throw new Error('expected a ConfigError')
}

const dir = mkdtempSync(join(tmpdir(), 'p2pmld-cfg-errors-'))
afterAll(() => { rmSync(dir, { recursive: true, force: true }) })

/** the error loadDaemonConfig gives for a daemon config file `name` holding `text` */
function daemonFileMessage(name: string, text: string): string {
  const file = join(dir, name)
  writeFileSync(file, text)
  return message(() => loadDaemonConfig({ configFile: file, env: { HOME: dir } }))
}

describe('unknown keys suggest the nearest valid one', () => {
  it.each([
    [{ epoch: 3 }, 'epoch: unknown key: did you mean epochs?'],
    [{ lr: 0.1 }, 'lr: unknown key: did you mean optimizer.lr?'],
    [{ batch_size: 32 }, 'batch_size: unknown key: did you mean batchSize?'],
    [{ momentum: 0.5 }, 'momentum: unknown key: did you mean optimizer.momentum?'],
    [{ patience: 2 }, 'patience: unknown key: did you mean lrSchedule.patience or earlyStopping.patience?'],
    [{ compression: { bit: 4 } }, 'compression.bit: unknown key: did you mean bits?'],
    [{ optimizer: { type: 'sgd', beta1: 0.9 } }, 'optimizer.beta1: unknown key: it applies only when optimizer.type is adam']
  ])('%j', (input, expected) => {
    expect(message(() => parseJobConfig(input, 'job file j.yaml'))).toBe(`invalid job file j.yaml:\n  ${expected}`)
  })

  it('a value of another type names the type wanted and the value given', () => {
    // it read 'Invalid input: expected string, received array'
    expect(message(() => parseJobConfig({ model: [1, 2] }, 'job file j.yaml'))).toBe('invalid job file j.yaml:\n  model: must be a string, got [1,2]')
    expect(message(() => parseJobConfig({ id: true }, 'job file j.yaml'))).toBe('invalid job file j.yaml:\n  id: must be a string, got true')
  })

  it('lists the valid keys when nothing is close', () => {
    expect(message(() => parseJobConfig({ colour: 'red' }))).toMatch(/colour: unknown key: valid keys here: id, model, dataset, seed, epochs, batchSize/)
  })

  it('in a daemon config file too', () => {
    const file = join(dir, 'daemon.yaml')
    writeFileSync(file, 'dataDirectory: /tmp/x\nlog_level: info\n')
    const text = message(() => loadDaemonConfig({ configFile: file, env: { HOME: dir } }))
    expect(text).toContain('dataDirectory: unknown key: did you mean dataDir?')
    expect(text).toContain('log_level: unknown key: did you mean logLevel?')
  })

  it('inside the offload section (its string shorthand parsed first) too', () => {
    // it read 'unknown key' with no suggestion: the section's schema sat behind its shorthand parsing
    expect(daemonFileMessage('offload.yaml', 'offload:\n  mode: pool\n  wokers: 2\n')).toContain('offload.wokers: unknown key: did you mean workers?')
    expect(message(() => loadDaemonConfig({ env: { HOME: dir }, flags: { offload: '{"mode": "pool", "wokers": 2}' } }))).toContain('--offload.wokers: unknown key: did you mean workers?')
  })

  it('a single value where a list belongs says so, with the list to write', () => {
    // it read 'Invalid input: expected array, received string'
    expect(daemonFileMessage('listen.yaml', 'listen: /ip4/127.0.0.1/tcp/4722\n')).toContain(`listen: is a list, got the single value "/ip4/127.0.0.1/tcp/4722": write it as a list, ["/ip4/127.0.0.1/tcp/4722"] (in YAML also a line '- /ip4/127.0.0.1/tcp/4722' under the key)`)
  })

  it('a key left out that has no default: required, with the choice that needs it', () => {
    // it read 'Invalid input: expected string, received undefined'
    expect(daemonFileMessage('lambda.yaml', 'offload:\n  mode: lambda\n')).toContain('offload.bucket: is required with mode lambda (it has no default): give a string')
    expect(message(() => loadDaemonConfig({ env: { HOME: dir }, flags: { offload: 'lambda' } }))).toContain('--offload.bucket: is required (it has no default): give a string')
    // it read 'give a array'
    expect(message(() => parseJobConfig({ attack: { kind: 'sign-flip' } }, 'job file j.yaml'))).toContain('attack.peers: is required (it has no default): give an array')
  })

  it('a mode given as the shorthand string names the string given', () => {
    // it read '--offload.mode: must be one of none, pool, lambda, stepfunctions', without the value
    expect(message(() => loadDaemonConfig({ env: { HOME: dir }, flags: { offload: 'gpu' } }))).toContain("--offload: must be one of none, pool, lambda, stepfunctions, got 'gpu'")
    expect(message(() => loadDaemonConfig({ env: { HOME: dir, P2PMLD_OFFLOAD: 'pol' } }))).toContain("P2PMLD_OFFLOAD: must be one of none, pool, lambda, stepfunctions, got 'pol' (did you mean pool?)")
    expect(message(() => loadDaemonConfig({ env: { HOME: dir }, flags: { offload: '{"mode": "gpu"}' } }))).toContain("--offload.mode: must be one of none, pool, lambda, stepfunctions, got 'gpu'")
    // JSON with its keys unquoted: it read 'expected object, received string'
    expect(message(() => loadDaemonConfig({ env: { HOME: dir }, flags: { offload: '{mode:pool}' } }))).toContain(`--offload: '{mode:pool}' is not valid JSON: write the section as JSON with its keys in double quotes, e.g. '{"mode": "pool", "workers": 2}', or give the mode alone, e.g. pool`)
  })
})

describe('a single value where a section of keys belongs', () => {
  it.each([
    [{ optimizer: 'sgd' }, 'optimizer: is a section of keys (type, lr, momentum, weightDecay, nesterov, beta1, beta2, eps), not a single value, got "sgd": write optimizer: { type: sgd } (its other keys are optional)'],
    [{ aggregation: 'mean' }, 'aggregation: is a section of keys (rule, f, multiKrumM, clipRadius, clipIterations), not a single value, got "mean": write aggregation: { rule: mean } (its other keys are optional)'],
    [{ earlyStopping: 5 }, 'earlyStopping: is a section of keys (patience, minDelta), not a single value, got 5'],
    // YAML lists where keys belong: zod's own words were 'Invalid input: expected object, received array', under '(root)'
    [{ optimizer: ['sgd'] }, 'optimizer: is a section of keys (type, lr, momentum, weightDecay, nesterov, beta1, beta2, eps), not a list: give its keys as key: value pairs'],
    [['model', 'mlp'], '(top level): is a section of keys (id, model, dataset, seed, epochs, batchSize, trainSamples, optimizer, lrSchedule, earlyStopping, aggregation, compression, minPeers, stepDeadlineMs, quorum, evictAfterMissedSteps, checkpointEverySteps, digestEvery, attack, transport, exchange, mode, maxStaleness, averageEvery), not a list: give its keys as key: value pairs, e.g. model: lenet5']
  ])('%j names its keys, and the key a value belongs to', (input, expected) => {
    expect(message(() => parseJobConfig(input, 'job file j.yaml'))).toBe(`invalid job file j.yaml:\n  ${expected}`)
  })
})

describe('enum errors list the allowed values', () => {
  it.each([
    [{ compression: { bits: 3 } }, 'compression.bits: must be one of 2, 4, 8, got 3'],
    [{ compression: { codec: 'qsdg' } }, "compression.codec: must be one of qsgd, fp16, none, got 'qsdg' (did you mean qsgd?)"],
    [{ optimizer: { type: 'adma' } }, "optimizer.type: must be one of sgd, adam, got 'adma' (did you mean adam?)"],
    [{ aggregation: { rule: 'average' } }, "aggregation.rule: must be one of trimmed-mean, mean, median, mean-around-median, krum, multi-krum, centered-clip, got 'average'"]
  ])('%j', (input, expected) => {
    expect(message(() => parseJobConfig(input))).toBe(`invalid job config:\n  ${expected}`)
  })

  it('names the flag or variable the value came from', () => {
    expect(message(() => loadDaemonConfig({ env: { HOME: dir, P2PMLD_LOG_LEVEL: 'verbose' } })))
      .toBe("invalid environment:\n  P2PMLD_LOG_LEVEL: must be one of fatal, error, warn, info, debug, trace, silent, got 'verbose'")
    // a repeated flag's second value: it read '--listen.1', an internal path
    expect(message(() => loadDaemonConfig({ env: { HOME: dir }, flags: { listen: ['/ip4/127.0.0.1/tcp/1', '/ip4/127.0.0.1/tcp/99999'] } })))
      .toMatch(/^invalid flags:\n {2}--listen \(value 2 of 2\): '\/ip4\/127\.0\.0\.1\/tcp\/99999' is not a valid multiaddr/)
    // the parser's reason names what is wrong in it (the port), not only that something is
    expect(message(() => loadDaemonConfig({ env: { HOME: dir }, flags: { listen: ['/ip4/127.0.0.1/tcp/99999'] } })))
      .toBe("invalid flags:\n  --listen: '/ip4/127.0.0.1/tcp/99999' is not a valid multiaddr: value must be smaller than or equal to 65535 (examples: /ip4/0.0.0.0/tcp/4001 to listen on, /ip4/10.0.0.2/tcp/4001/p2p/12D3KooW... to dial a peer)")
    expect(message(() => loadDaemonConfig({ env: { HOME: dir }, flags: { bootstrap: ['/ip4/10.0.0.2/tcpp/4001'] } })))
      .toMatch(/--bootstrap: '\/ip4\/10\.0\.0\.2\/tcpp\/4001' is not a valid multiaddr: protocol tcpp was unknown \(examples/)
    // a peer id short of a character (a copy-paste): it read 'Incorrect length', no flag, no value
    const cut = '/ip4/127.0.0.1/tcp/4711/p2p/12D3KooWEj1swYCwonHz23AYQF7Np7GyknX3WuUt2cvQFHuqGek'
    expect(message(() => loadDaemonConfig({ env: { HOME: dir }, flags: { bootstrap: [cut] } })))
      .toBe(`invalid flags:\n  --bootstrap: the peer id '12D3KooWEj1swYCwonHz23AYQF7Np7GyknX3WuUt2cvQFHuqGek' in '${cut}' is not a valid peer id (incorrect length: a character lost or added?): copy the whole address the peer printed after 'bootstrap address' (its id starts 12D3KooW and is 52 characters long)`)
    expect(message(() => loadDaemonConfig({ env: { HOME: dir, P2PMLD_BOOTSTRAP: `${cut}d0` } }))).toMatch(/P2PMLD_BOOTSTRAP.*is not a valid peer id \(a character that is not base58\)/)
    expect(loadDaemonConfig({ env: { HOME: dir }, flags: { bootstrap: [`${cut}d`] } }).bootstrap).toEqual([`${cut}d`])
  })
})

describe('nearest', () => {
  it('counts a transposition as one edit and ignores case, dashes and underscores', () => {
    expect(editDistance('epcohs', 'epochs')).toBe(1)
    expect(nearest('Batch-Size', ['batchSize', 'bits'])).toEqual(['batchSize'])
    expect(nearest('xyz', ['epochs', 'seed'])).toEqual([])
  })
})

describe('settings that do not go together name the field and the fix', () => {
  it('exchange gossipsub needs transport libp2p', () => {
    for (const transport of ['amqp', 'auto']) {
      expect(message(() => parseJobConfig({ exchange: 'gossipsub', transport }))).toContain('exchange: exchange gossipsub needs transport libp2p')
    }
    expect(parseJobConfig({ exchange: 'gossipsub' }).exchange).toBe('gossipsub')
    expect(message(() => parseJobConfig({ exchange: 'relay' }))).toContain('exchange')
  })

  it('exchange reduce-scatter needs transport libp2p, mode sync and a coordinate-wise rule', () => {
    expect(message(() => parseJobConfig({ exchange: 'reduce-scatter', transport: 'amqp' }))).toContain('exchange: exchange reduce-scatter needs transport libp2p')
    expect(message(() => parseJobConfig({ exchange: 'reduce-scatter', mode: 'async' }))).toContain('exchange: exchange reduce-scatter runs in mode sync only')
    expect(message(() => parseJobConfig({ exchange: 'reduce-scatter', minPeers: 5, aggregation: { rule: 'krum', f: 1 } })))
      .toContain('exchange: exchange reduce-scatter aggregates slices of the gradients, which krum cannot (it compares whole vectors): set aggregation.rule to one of trimmed-mean, mean, median, mean-around-median')
    expect(parseJobConfig({ exchange: 'reduce-scatter', aggregation: { rule: 'median', f: 1 } }).exchange).toBe('reduce-scatter')
  })

  it('says what a number must be, with the value given, instead of the schema library\'s wording (a whole number\'s bounds as the flags word them)', () => {
    const job = message(() => parseJobConfig({ epochs: 1.5, minPeers: 0, batchSize: 100000 }))
    expect(job).toContain('epochs: must be a whole number, got 1.5')
    expect(job).toContain('minPeers: must be a whole number >= 1, got 0')
    expect(job).toContain('batchSize: must be a whole number <= 65536, got 100000')
    expect(message(() => loadDaemonConfig({ env: { HOME: '/h' }, flags: { metricsPort: 99999 } }))).toContain('--metrics-port: must be a whole number <= 65535, got 99999')
    // flags and env vars arrive as strings: a minus or a fraction reaches the schema's bounds
    expect(message(() => loadDaemonConfig({ env: { HOME: '/h' }, flags: { metricsPort: '-1' } }))).toContain('--metrics-port: must be a whole number >= 0, got -1')
    expect(message(() => loadDaemonConfig({ env: { HOME: '/h' }, flags: { computeThreads: '1.5' } }))).toContain('--compute-threads: must be a whole number, got 1.5')
    expect(message(() => loadDaemonConfig({ env: { HOME: '/h', P2PMLD_METRICS_PORT: 'abc' } }))).toContain('P2PMLD_METRICS_PORT: must be a number, got "abc"')
  })

  it('too few minPeers for the rule: lowering f is offered only where f is above 0', () => {
    expect(message(() => parseJobConfig({ minPeers: 2, aggregation: { rule: 'trimmed-mean', f: 1 } })))
      .toContain('minPeers: trimmed-mean with f=1 needs at least 3 peers: set minPeers (--min-peers) to 3 or more, or lower aggregation.f (--f)')
    const krum = message(() => parseJobConfig({ minPeers: 1, aggregation: { rule: 'krum', f: 0 } }))
    expect(krum).toContain('minPeers: krum with f=0 needs at least 3 peers: set minPeers (--min-peers) to 3 or more, or set aggregation.rule (--aggregation) to mean (krum needs 3 even with f=0)')
    expect(krum).not.toContain('lower aggregation.f')
  })

  it('a quorum below 0.5 is refused with the reason: half of the members or fewer never step without the most senior (split-brain guard)', () => {
    expect(message(() => parseJobConfig({ quorum: 0.3 }))).toContain('quorum: must be at least 0.5, got 0.3: a step always needs more than half of its members')
    expect(parseJobConfig({ quorum: 0.5 }).quorum).toBe(0.5)
    expect(message(() => parseJobConfig({ quorum: 1.5 }))).toContain('quorum: must be at most 1, got 1.5')
  })
})
