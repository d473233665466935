/**
 * A TCP port forward inside a network namespace, as a NAT gateway's port mapping does: connections
 * to <from> are relayed to <to>. A real process (plain node, no test code); on SIGTERM it prints
 * how many connections and bytes it relayed as one JSON line and exits.
 */
import { spawn } from 'node:child_process'
import type { NetnsHost, NetnsTopology } from './netns-topology.js'

export interface PortForward {
  /** resolves once it listens */
  readonly ready: Promise<void>
  /** SIGTERM it and read its totals */
  stop(): Promise<{ connections: number, bytesIn: number, bytesOut: number }>
}

const RELAY = `
const net = require('node:net')
const [fromHost, fromPort, toHost, toPort] = process.argv.slice(1)
const totals = { connections: 0, bytesIn: 0, bytesOut: 0 }
const server = net.createServer((inbound) => {
  totals.connections++
  const outbound = net.connect(Number(toPort), toHost)
  inbound.on('data', (d) => { totals.bytesIn += d.length })
  outbound.on('data', (d) => { totals.bytesOut += d.length })
  inbound.pipe(outbound)
  outbound.pipe(inbound)
  inbound.on('error', () => outbound.destroy())
  outbound.on('error', () => inbound.destroy())
  inbound.on('close', () => outbound.destroy())
  outbound.on('close', () => inbound.destroy())
})
server.listen(Number(fromPort), fromHost, () => console.log('listening'))
process.on('SIGTERM', () => { console.log(JSON.stringify(totals)); process.exit(0) })
`

export function startPortForward(topology: NetnsTopology, host: NetnsHost, from: { host: string, port: number }, to: { host: string, port: number }): PortForward {
  const [cmd, ...prefix] = topology.execPrefix(host)
  const child = spawn(cmd, [...prefix, process.execPath, '-e', RELAY, from.host, String(from.port), to.host, String(to.port)], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { err += d.toString() })
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()))
  const killOnExit = (): void => { child.kill('SIGKILL') }
  process.once('exit', killOnExit)
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`port forward did not start: ${err}`)), 15_000)
    child.stdout.on('data', () => {
      if (out.includes('listening')) {
        clearTimeout(timer)
        resolve()
      }
    })
    void exited.then(() => reject(new Error(`port forward exited: ${err}`)))
  })
  return {
    ready,
    async stop() {
      process.off('exit', killOnExit)
      child.kill('SIGTERM')
      await exited
      const line = out.split('\n').find((l) => l.startsWith('{'))
      if (line === undefined) throw new Error(`port forward printed no totals: ${out} ${err}`)
      return JSON.parse(line) as { connections: number, bytesIn: number, bytesOut: number }
    }
  }
}
