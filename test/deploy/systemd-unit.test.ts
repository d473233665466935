/**
 * deploy/p2pmld.service: `systemd-analyze verify` passes (where systemd is installed), it runs
 * the daemon as a non-root user with its state dir, restarts it on failure, and the daemon
 * started with the unit's environment keeps its state and a 0600 control socket there.
 */
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DAEMON_ENV_VARS } from '../../config/load.js'
import { ensureBuilt } from '../e2e/support/build.js'
import { watchChildOutput } from '../support/child-output.js'

const ROOT = resolve(import.meta.dirname, '../..')
const UNIT = join(ROOT, 'deploy/p2pmld.service')
const text = readFileSync(UNIT, 'utf8')

/** section -> key -> values (a key may repeat, as Environment= does) */
function parseUnit(unit: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>()
  let current: Map<string, string[]> | undefined
  for (const raw of unit.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue
    const header = /^\[(.+)\]$/.exec(line)
    if (header !== null) {
      current = new Map()
      sections.set(header[1], current)
      continue
    }
    const eq = line.indexOf('=')
    if (current === undefined || eq < 0) throw new Error(`unparseable unit line: ${line}`)
    const key = line.slice(0, eq)
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1)])
  }
  return sections
}

const unit = parseUnit(text)
const service = unit.get('Service')!
const one = (key: string): string | undefined => service.get(key)?.at(-1)
const environment = new Map((service.get('Environment') ?? []).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]))

describe('deploy/p2pmld.service', () => {
  let dir: string
  let cli: string
  beforeAll(async () => {
    cli = await ensureBuilt()
    dir = mkdtempSync(join(tmpdir(), 'p2pmld-unit-'))
  }, 180_000)
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('passes systemd-analyze verify', () => {
    const probe = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' })
    if (probe.error !== undefined) {
      console.warn('test/deploy: systemd-analyze is not installed: the unit is only checked by parsing')
      return
    }
    // verify also checks that ExecStart exists: point it at this checkout's build instead of
    // /usr/local/bin (where `npm install -g` puts it on a host); nothing else changes
    const copy = join(dir, 'p2pmld.service')
    writeFileSync(copy, text.replace('ExecStart=/usr/local/bin/p2pmld ', `ExecStart=${cli} `))
    expect(readFileSync(copy, 'utf8')).not.toBe(text)
    const run = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' })
    expect(run.stderr + run.stdout).toBe('')
    expect(run.status).toBe(0)
  })

  it('runs the daemon as a non-root user, restarts it on failure, keeps its state in /var/lib/p2pmld', () => {
    expect(one('User')).toBe('p2pmld')
    expect(one('Group')).toBe('p2pmld')
    expect(one('Restart')).toBe('on-failure')
    expect(one('ExecStart')).toBe('/usr/local/bin/p2pmld start')
    expect(one('StateDirectory')).toBe('p2pmld')
    expect(environment.get(DAEMON_ENV_VARS.dataDir)).toBe('/var/lib/p2pmld')
    expect(environment.get('HOME')).toBe('/var/lib/p2pmld')
    expect(one('UMask')).toBe('0077')
    expect(one('EnvironmentFile')).toBe('-/etc/p2pmld/p2pmld.env')
    expect(unit.get('Install')?.get('WantedBy')).toEqual(['multi-user.target'])
  })

  it('lets the daemon read the host\'s interfaces: listening on 0.0.0.0 (the default) lists them over netlink', () => {
    // without AF_NETLINK, os.networkInterfaces() fails (EAFNOSUPPORT, 97) and the daemon exits at start
    expect(one('RestrictAddressFamilies')?.split(/\s+/)).toEqual(expect.arrayContaining(['AF_UNIX', 'AF_INET', 'AF_INET6', 'AF_NETLINK']))
  })

  it('started with the unit\'s environment, the daemon keeps its key and a 0600 control socket in the data dir', async () => {
    const dataDir = join(dir, 'var-lib-p2pmld')
    const env: Record<string, string> = { PATH: process.env.PATH ?? '' }
    for (const [key, value] of environment) env[key] = value.replaceAll('/var/lib/p2pmld', dataDir)
    env[DAEMON_ENV_VARS.listen] = '/ip4/127.0.0.1/tcp/0'
    const child = spawn(process.execPath, [cli, 'start'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] })
    const output = watchChildOutput('unit-daemon', child)
    try {
      await output.waitFor(output.stdout, /^control socket (\S+)$/m, 30_000, 'stdout')
      const socket = join(dataDir, 'p2pmld.sock')
      expect(output.stdout()).toContain(`control socket ${socket}\n`)
      expect(statSync(socket).isSocket()).toBe(true)
      expect(statSync(socket).mode & 0o777).toBe(0o600)
      expect(statSync(join(dataDir, 'peer-key.pb')).mode & 0o777).toBe(0o600)
    } finally {
      child.kill('SIGTERM')
    }
    // SIGTERM (the unit's KillSignal) is a clean stop
    expect(await output.exited).toBe(0)
  }, 60_000)
})
