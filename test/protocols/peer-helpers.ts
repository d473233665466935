import { generateKeyPair } from '@libp2p/crypto/keys'
import { pino, type Logger } from 'pino'
import { createPeerNode, type PeerNode, type PeerNodeOptions } from '../../protocols/node/index.js'

export const LOOPBACK = '/ip4/127.0.0.1/tcp/0'

export interface LogRecord { level: number, msg: string, component?: string, [key: string]: unknown }

/** a pino logger whose records land in an array the test can inspect */
export function captureLogs (): { logger: Logger, records: LogRecord[] } {
  const records: LogRecord[] = []
  const logger = pino({ level: 'debug' }, { write (line: string) { records.push(JSON.parse(line) as LogRecord) } })
  return { logger, records }
}

export async function newNode (over: Partial<PeerNodeOptions> = {}): Promise<PeerNode> {
  return await createPeerNode({ privateKey: await generateKeyPair('Ed25519'), listen: [LOOPBACK], ...over })
}

/** n started nodes, every one after the first bootstrapping from the first */
export async function startBootstrappedNodes (n: number, over: Partial<PeerNodeOptions> = {}): Promise<PeerNode[]> {
  const first = await newNode(over)
  await first.start()
  const nodes = [first]
  for (let i = 1; i < n; i++) {
    const node = await newNode({ bootstrap: first.dialableAddrs(), bootstrapInitialDelayMs: 100, ...over })
    await node.start()
    nodes.push(node)
  }
  return nodes
}

export async function waitFor (condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

export async function stopAll (items: Array<{ stop(): Promise<void> }>): Promise<void> {
  await Promise.all(items.map(async (x) => { await x.stop() }))
}
