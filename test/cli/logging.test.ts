/** Logs: JSON with one `component` per line, or one readable line per record for a terminal. */
import { Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { createLogger } from '../../daemon/logger.js'
import { defaultLogFormat } from '../../cli/support/log-format.js'

function capture(): { stream: Writable, text: () => string } {
  let text = ''
  return { stream: new Writable({ write(chunk, _enc, done) { text += String(chunk); done() } }), text: () => text }
}

function logSome(format: 'json' | 'pretty'): string {
  const out = capture()
  const log = createLogger('info', { component: 'daemon' }, { format, destination: out.stream, colorize: false })
  log.info({ job: 'j1' }, 'hosting job')
  log.child({ job: 'j1' }).warn('evicting a member')
  // what the control server, the libp2p node and the gradient exchange do with the daemon's logger
  log.child({ component: 'control' }).info({ socketPath: '/tmp/s' }, 'control socket listening')
  log.child({ job: 'j1' }).child({ component: 'gradient-exchange', mode: 'stream' }).debug('hidden at info')
  log.child({ job: 'j1' }).child({ component: 'gradient-exchange', mode: 'stream' }).error('stream failed')
  return out.text()
}

describe('createLogger', () => {
  it('json: every line carries component exactly once, the nearest logger\'s', () => {
    const lines = logSome('json').trim().split('\n')
    expect(lines).toHaveLength(4)
    for (const line of lines) expect(line.match(/"component":/g)).toHaveLength(1)
    expect(lines.map((l) => (JSON.parse(l) as { component: string }).component)).toEqual(['daemon', 'daemon', 'control', 'gradient-exchange'])
  })

  it('pretty: one readable line per record, led by time, level and component', () => {
    const lines = logSome('pretty').trim().split('\n')
    expect(lines).toHaveLength(4)
    expect(lines[0]).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: daemon: hosting job \{"job":"j1"\}$/)
    expect(lines[2]).toMatch(/ INFO: control: control socket listening \{"socketPath":"\/tmp\/s"\}$/)
    expect(lines[3]).toMatch(/ ERROR: gradient-exchange: stream failed \{"job":"j1","mode":"stream"\}$/)
    for (const line of lines) expect(line.match(/component/g)).toBeNull()
  })

  it('defaults to pretty only when stdout and stderr are both terminals', () => {
    expect(defaultLogFormat({ isTTY: true }, { isTTY: true })).toBe('pretty')
    expect(defaultLogFormat({ isTTY: false }, { isTTY: true })).toBe('json')
    expect(defaultLogFormat({}, { isTTY: true })).toBe('json')
  })
})
