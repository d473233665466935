import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { DEFAULT_RESTART_TIMINGS, restartTimings } from '../../config/daemon-config.js'
import { ConfigError } from '../../config/job-config.js'
import { ConfigFileNotFoundError, ConfigSyntaxError, loadDaemonConfig, loadJobConfigFile } from '../../config/load.js'

let dir: string
beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'p2pmld-cfg-')) })
afterEach(() => { rmSync(dir, { recursive: true, force: true }) })

function write(name: string, text: string): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

function thrown(fn: () => unknown): Error {
  try {
    fn()
  } catch (err) {
    return err as Error
  }
  throw new Error('expected a throw')
}

describe('loadDaemonConfig', () => {
  it('fills defaults under $HOME/.p2pmld', () => {
    const config = loadDaemonConfig({ env: { HOME: '/home/ada' }, cwd: dir })
    expect(config).toMatchObject({
      dataDir: '/home/ada/.p2pmld',
      socketPath: '/home/ada/.p2pmld/p2pmld.sock',
      listen: ['/ip4/0.0.0.0/tcp/4001'],
      bootstrap: [],
      logLevel: 'info'
    })
    expect(config.computeThreads).toBeGreaterThanOrEqual(1)
    expect(config.pskFile).toBeUndefined()
    expect(config.allowlist).toBeUndefined()
  })

  it('applies flags > env > file > defaults, field by field', () => {
    const file = write('daemon.yaml', [
      'dataDir: state',
      'listen: [/ip4/127.0.0.1/tcp/5001]',
      'bootstrap: [/ip4/127.0.0.1/tcp/6001]',
      'logLevel: warn',
      'computeThreads: 3',
      'pskFile: keys/swarm.psk'
    ].join('\n'))
    const env = {
      HOME: '/home/ada',
      P2PMLD_CONFIG: file,
      P2PMLD_LOG_LEVEL: 'debug',
      P2PMLD_BOOTSTRAP: '/ip4/127.0.0.1/tcp/7001, /ip4/127.0.0.1/tcp/7002',
      P2PMLD_COMPUTE_THREADS: '4'
    }
    const config = loadDaemonConfig({ env, cwd: '/work', flags: { computeThreads: 1, listen: undefined, dataDir: undefined } })
    // file paths are relative to the file's directory
    expect(config.dataDir).toBe(join(dir, 'state'))
    expect(config.pskFile).toBe(join(dir, 'keys/swarm.psk'))
    expect(config.socketPath).toBe(join(dir, 'state', 'p2pmld.sock'))
    expect(config.listen).toEqual(['/ip4/127.0.0.1/tcp/5001'])
    expect(config.bootstrap).toEqual(['/ip4/127.0.0.1/tcp/7001', '/ip4/127.0.0.1/tcp/7002'])
    expect(config.logLevel).toBe('debug')
    expect(config.computeThreads).toBe(1)

    const flagged = loadDaemonConfig({ env, cwd: '/work', configFile: file, flags: { dataDir: 'here', socketPath: '/tmp/s.sock', logLevel: 'error' } })
    expect(flagged.dataDir).toBe('/work/here')
    expect(flagged.socketPath).toBe('/tmp/s.sock')
    expect(flagged.logLevel).toBe('error')
    expect(flagged.computeThreads).toBe(4)
  })

  it('accepts flags as commander gives them (strings)', () => {
    const config = loadDaemonConfig({ env: { HOME: '/h' }, flags: { computeThreads: '3', bootstrap: '/ip4/127.0.0.1/tcp/1,/ip4/127.0.0.1/tcp/2', allowlist: ['12D3KooWA'] } })
    expect(config.computeThreads).toBe(3)
    expect(config.bootstrap).toEqual(['/ip4/127.0.0.1/tcp/1', '/ip4/127.0.0.1/tcp/2'])
    expect(config.allowlist).toEqual(['12D3KooWA'])
  })

  it('derives the socket from the winning data dir', () => {
    const config = loadDaemonConfig({ env: { HOME: '/h', P2PMLD_DATA_DIR: '/srv/p2p' }, flags: { dataDir: '/var/p2p' } })
    expect(config.socketPath).toBe('/var/p2p/p2pmld.sock')
  })

  it('names the source and the field of each bad value', () => {
    const envErr = thrown(() => loadDaemonConfig({ env: { HOME: '/h', P2PMLD_COMPUTE_THREADS: 'lots', P2PMLD_LOG_LEVEL: 'loud' } }))
    expect(envErr).toBeInstanceOf(ConfigError)
    expect(envErr.message).toMatch(/^invalid environment:\n/)
    expect(envErr.message).toContain('P2PMLD_COMPUTE_THREADS:')
    expect(envErr.message).toContain('P2PMLD_LOG_LEVEL:')

    const flagErr = thrown(() => loadDaemonConfig({ env: { HOME: '/h' }, flags: { listen: ['/ip4/127.0.0.1/tcp/1', 'localhost:4001'], computeThreads: 0 } }))
    expect(flagErr.message).toContain("--listen (value 2 of 2): 'localhost:4001' is not a valid multiaddr")
    expect(flagErr.message).toContain('--compute-threads:')

    const file = write('bad.yaml', 'listen: /ip4/1.2.3.4/tcp/1\nlogLevl: info\n')
    const fileErr = thrown(() => loadDaemonConfig({ env: { HOME: '/h' }, configFile: file }))
    expect(fileErr.message).toContain(`invalid config file ${file}:`)
    expect(fileErr.message).toContain('listen: is a list, got the single value "/ip4/1.2.3.4/tcp/1"')
    expect(fileErr.message).toContain('logLevl: unknown key: did you mean logLevel?')
  })

  it('takes the restart timings from flags, env and file, and leaves them at their defaults otherwise', () => {
    expect(restartTimings(loadDaemonConfig({ env: { HOME: '/h' } }))).toEqual(DEFAULT_RESTART_TIMINGS)
    expect(DEFAULT_RESTART_TIMINGS).toEqual({ graceMs: 15_000, staggerMs: 5_000, seniorWaitMs: 60_000 })
    const file = write('daemon.yaml', 'restartGraceMs: 4000\nrestartSeniorWaitMs: 20000\n')
    const config = loadDaemonConfig({ env: { HOME: '/h', P2PMLD_RESTART_STAGGER_MS: '3000' }, configFile: file, flags: { restartGraceMs: '2000' } })
    expect(restartTimings(config)).toEqual({ graceMs: 2000, staggerMs: 3000, seniorWaitMs: 20_000 })
  })

  it('refuses a bad restart timing, naming the field', () => {
    const flagErr = thrown(() => loadDaemonConfig({ env: { HOME: '/h' }, flags: { restartStaggerMs: '0', restartGraceMs: 'soon' } }))
    expect(flagErr).toBeInstanceOf(ConfigError)
    expect(flagErr.message).toMatch(/^invalid flags:\n/)
    expect(flagErr.message).toMatch(/--restart-stagger-ms: .*100/)
    expect(flagErr.message).toContain('--restart-grace-ms:')
    const envErr = thrown(() => loadDaemonConfig({ env: { HOME: '/h', P2PMLD_RESTART_SENIOR_WAIT_MS: '1.5' } }))
    expect(envErr.message).toContain('P2PMLD_RESTART_SENIOR_WAIT_MS:')
    const fileErr = thrown(() => loadDaemonConfig({ env: { HOME: '/h' }, configFile: write('bad.yaml', 'restartGraceMs: -1\nrestartGrace: 100\n') }))
    expect(fileErr.message).toContain('restartGraceMs: ')
    expect(fileErr.message).toContain('restartGrace: unknown key: did you mean restartGraceMs?')
    // a senior wait shorter than the grace, each valid alone (here the default wait against a longer grace)
    const crossErr = thrown(() => loadDaemonConfig({ env: { HOME: '/h' }, flags: { restartGraceMs: '90000' } }))
    expect(crossErr).toBeInstanceOf(ConfigError)
    expect(crossErr.message).toBe('invalid daemon config:\n  restartSeniorWaitMs (--restart-senior-wait-ms, P2PMLD_RESTART_SENIOR_WAIT_MS): 60000 ms (the default) is shorter than restartGraceMs (90000 ms): give a senior wait at least as long as the grace')
  })

  it('refuses a socket path too long for a Unix socket', () => {
    const err = thrown(() => loadDaemonConfig({ env: { HOME: '/h' }, flags: { dataDir: '/' + 'd'.repeat(120) } }))
    expect(err).toBeInstanceOf(ConfigError)
    expect(err.message).toContain('longer than 103 bytes')
  })

  it('reports a missing config file', () => {
    const err = thrown(() => loadDaemonConfig({ env: { HOME: '/h' }, configFile: join(dir, 'nope.yaml') }))
    expect(err).toBeInstanceOf(ConfigFileNotFoundError)
    expect(err.message).toBe(`config file ${join(dir, 'nope.yaml')} does not exist: check the path`)
  })

  it('says a job file given as the daemon config is one, in one line (not an unknown-key error per job key)', () => {
    const job = write('job.yaml', 'model: mlp\nepochs: 2\nbatchSize: 32\n')
    const err = thrown(() => loadDaemonConfig({ env: { HOME: '/h' }, configFile: job }))
    expect(err).toBeInstanceOf(ConfigError)
    expect(err.message).toBe(`config file ${job} is a job file (it sets model, epochs, batchSize), where a daemon config (dataDir, socketPath, listen, ...) goes: ` +
      'give a job file to p2pmld job submit <file> or p2pmld start --config <file>, and a daemon config to --daemon-config (start) or --config (the other commands)')
  })
})

describe('loadJobConfigFile', () => {
  it('loads YAML and JSON job files with defaults', () => {
    const yaml = loadJobConfigFile(write('job.yaml', 'id: run-1\nmodel: mlp\nepochs: 2\noptimizer:\n  type: sgd\n  lr: 0.1\n'))
    expect(yaml).toMatchObject({ id: 'run-1', model: 'mlp', epochs: 2, batchSize: 64, optimizer: { type: 'sgd', lr: 0.1, momentum: 0.9 } })
    const json = loadJobConfigFile(write('job.json', JSON.stringify({ model: 'lenet5', aggregation: { rule: 'median' } })))
    expect(json.aggregation).toMatchObject({ rule: 'median', f: 1 })
  })

  it('reports a missing file, a directory and an empty file', () => {
    expect(() => loadJobConfigFile(join(dir, 'missing.yaml'))).toThrow(ConfigFileNotFoundError)
    mkdirSync(join(dir, 'sub'))
    expect(() => loadJobConfigFile(join(dir, 'sub'))).toThrow(/is a directory/)
    expect(() => loadJobConfigFile(write('empty.yaml', ''))).toThrow(/is empty/)
  })

  it('reports a YAML syntax error with its line', () => {
    const path = write('broken.yaml', 'model: mlp\nepochs: 3\noptimizer: [sgd\nseed: 1\n')
    const err = thrown(() => loadJobConfigFile(path))
    expect(err).toBeInstanceOf(ConfigSyntaxError)
    expect((err as ConfigSyntaxError).line).toBe(4)
    expect(err.message).toMatch(new RegExp(`^job file ${path} has a syntax error at line 4, column \\d+: `))

    const dup = thrown(() => loadJobConfigFile(write('dup.yaml', 'model: mlp\nmodel: lenet5\n')))
    expect(dup).toBeInstanceOf(ConfigSyntaxError)
    expect((dup as ConfigSyntaxError).line).toBe(2)
  })

  it('names the over-indented line, not the value before it (YAML points at line 1 for a bad indent on line 2)', () => {
    const path = write('indent.yaml', 'model: mlp\n  epochs: 2\n')
    const err = thrown(() => loadJobConfigFile(path))
    expect(err).toBeInstanceOf(ConfigSyntaxError)
    expect((err as ConfigSyntaxError).line).toBe(2)
    expect(err.message).toBe(`job file ${path} has a syntax error at line 2: 'epochs: 2' is indented more than the key on line 1, so YAML reads it as part of that key's value: indent it like the keys around it (or, for a section, put nothing after line 1's colon)`)
    // inside a section, past a blank line
    const nested = thrown(() => loadJobConfigFile(write('nested.yaml', 'model: mlp\noptimizer:\n  type: sgd\n\n    lr: 0.1\n')))
    expect((nested as ConfigSyntaxError).line).toBe(5)
    expect(nested.message).toMatch(/at line 5: 'lr: 0.1' is indented more than the key on line 3,/)
  })

  it('reads a .json file as JSON: a trailing comma is a syntax error with its line (as YAML it passed)', () => {
    const path = write('comma.json', '{\n  "model": "mlp",\n  "epochs": 2,\n}\n')
    const err = thrown(() => loadJobConfigFile(path))
    expect(err).toBeInstanceOf(ConfigSyntaxError)
    expect((err as ConfigSyntaxError).line).toBe(4)
    expect(err.message).toMatch(new RegExp(`^job file ${path} is not valid JSON at line 4, column 1: .*\\(a \\.json file is read as JSON: no trailing commas or comments; name it \\.yaml to write YAML\\)$`))
    expect(loadJobConfigFile(write('fine.json', '{"model": "mlp", "epochs": 2}')).epochs).toBe(2)
  })

  it('names each bad field', () => {
    const path = write('bad.yaml', 'epochs: 0\nbatchSize: big\noptimizer:\n  type: sgd\n  lr: -1\ncompression:\n  bits: 3\nfavouriteColour: blue\n')
    const err = thrown(() => loadJobConfigFile(path))
    expect(err).toBeInstanceOf(ConfigError)
    const lines = err.message.split('\n')
    expect(lines[0]).toBe(`invalid job file ${path}:`)
    for (const field of ['epochs', 'batchSize', 'optimizer.lr', 'compression.bits']) {
      expect(lines.some((line) => line.startsWith(`  ${field}: `)), field).toBe(true)
    }
    expect(err.message).toContain('favouriteColour')
  })
})
