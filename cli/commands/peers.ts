import type { Command } from 'commander'
import type { PeersResult } from '../../daemon/control/methods.js'
import { addClientOptions, withClient, type ClientOptions } from '../support/daemon-target.js'
import { formatAge, formatTable } from '../support/format.js'
import { action, printResult } from '../support/output.js'

const yesNo = (value: boolean): string => value ? 'yes' : 'no'

export function formatPeers({ peers }: PeersResult, nowMs = Date.now()): string {
  if (peers.length === 0) return 'no known peers'
  return formatTable(
    ['PEER', 'CONNECTED', 'MEMBER', 'SUSPECTED', 'LAST SEEN', 'ADDRESSES'],
    peers.map((peer) => [
      peer.id,
      yesNo(peer.connected),
      yesNo(peer.member),
      yesNo(peer.suspected),
      formatAge(peer.lastSeen, nowMs),
      peer.addresses.length === 0 ? '-' : peer.addresses.join(', ')
    ])
  )
}

export function registerPeersCommand(program: Command): void {
  addClientOptions(program.command('peers').description('list the peers the daemon knows, with membership and suspicion'))
    .action(action(async (options: ClientOptions) => {
      const peers = await withClient(options, async (client) => await client.peers())
      printResult(options, peers, (result) => formatPeers(result))
    }))
}
