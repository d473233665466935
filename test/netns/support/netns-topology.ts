/**
 * Real hosts on one machine: a bridge in the root namespace and N network namespaces, each joined
 * to it by a veth pair and given its own address (10.77.0.1..N/24). Cutting a host's link sets the
 * root-side end of its veth down: its address stays configured, packets to and from it vanish, as
 * with a pulled cable. With `split`, the hosts sit on two bridges (two switches) joined by one
 * veth pair (the trunk): cutting the trunk splits the job's hosts in two, each side still reaching
 * its own. Every name carries the creating process's pid, so a crashed run cannot
 * collide with the next, and its leftovers are swept when their pid is gone.
 */
import { execFile, spawnSync } from 'node:child_process'
import { promisify } from 'node:util'

const run = promisify(execFile)

export class NetnsError extends Error {
  override name = 'NetnsError'
}

export interface NetnsHost {
  readonly index: number
  readonly namespace: string
  readonly address: string
  /** the root-namespace end of its veth pair: down = link cut */
  readonly hostVeth: string
  /** the namespace's end of its veth pair (its uplink: a qdisc here shapes what it sends) */
  readonly nsVeth: string
}

export interface NetnsTopology {
  readonly hosts: readonly NetnsHost[]
  /** argv prefix that runs a command inside a host's namespace */
  execPrefix(host: NetnsHost): string[]
  cut(host: NetnsHost): Promise<void>
  restore(host: NetnsHost): Promise<void>
  /** set the trunk between the two segments down (or up): only with `split` */
  cutTrunk(): Promise<void>
  restoreTrunk(): Promise<void>
  /** give a host a second address on its link (e.g. the public side of a NAT it sits behind) */
  addAddress(host: NetnsHost, address: string): Promise<void>
  /** delete every veth, the bridge and every namespace; idempotent, never throws */
  destroy(): Promise<void>
}

export interface NetnsTopologyOptions {
  readonly hosts: number
  /** the first three octets; host i (1-based) gets <subnet>.<i> */
  readonly subnet?: string
  /** unique part of every name (default: this process's pid) */
  readonly tag?: string
  /** hosts from this index (1-based) on sit on a second bridge, joined to the first by a trunk; absent: one bridge */
  readonly split?: number
}

const PREFIX = 'p2'
const names = (tag: string) => ({
  bridge: `${PREFIX}b${tag}`,
  secondBridge: `${PREFIX}c${tag}`,
  trunk: `${PREFIX}ta${tag}`,
  trunkPeer: `${PREFIX}tb${tag}`,
  namespace: (i: number) => `${PREFIX}n${tag}-${i}`,
  hostVeth: (i: number) => `${PREFIX}v${i}h${tag}`,
  nsVeth: (i: number) => `${PREFIX}v${i}n${tag}`
})

async function ip(...args: string[]): Promise<void> {
  try {
    await run('ip', args, { timeout: 10_000 })
  } catch (error) {
    const e = error as { stderr?: string, message: string }
    throw new NetnsError(`'ip ${args.join(' ')}' failed: ${(e.stderr ?? e.message).trim()}`)
  }
}

/**
 * True when this process may create network namespaces (root, or CAP_NET_ADMIN + CAP_SYS_ADMIN):
 * really creates and deletes one, since a uid check cannot see capabilities or seccomp.
 */
export function canUseNetns(): boolean {
  const probe = `${PREFIX}probe${process.pid}`
  const added = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8', timeout: 10_000 })
  if (added.error !== undefined || added.status !== 0) return false
  const deleted = spawnSync('ip', ['netns', 'delete', probe], { encoding: 'utf8', timeout: 10_000 })
  return deleted.status === 0
}

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Deletes namespaces and links this helper made in runs whose process no longer exists. */
export function sweepStale(): string[] {
  const swept: string[] = []
  const nsList = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? ''
  for (const m of nsList.matchAll(new RegExp(`^(${PREFIX}n(\\d+)-\\d+)\\b`, 'gm'))) {
    if (isAlive(Number(m[2]))) continue
    spawnSync('ip', ['netns', 'delete', m[1]])
    swept.push(m[1])
  }
  const links = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout ?? ''
  for (const m of links.matchAll(new RegExp(`^\\d+: (${PREFIX}(?:b|c|ta|v\\d+h)(\\d+))[@:]`, 'gm'))) {
    if (isAlive(Number(m[2]))) continue
    spawnSync('ip', ['link', 'delete', m[1]])
    swept.push(m[1])
  }
  return swept
}

export async function createNetnsTopology(options: NetnsTopologyOptions): Promise<NetnsTopology> {
  const subnet = options.subnet ?? '10.77.0'
  const n = names(options.tag ?? String(process.pid))
  const { split } = options
  if (split !== undefined && (split < 2 || split > options.hosts)) throw new NetnsError(`split ${split}: give the first host (2..${options.hosts}) of the second segment`)
  if (n.hostVeth(options.hosts).length > 15) throw new NetnsError(`interface name ${n.hostVeth(options.hosts)} exceeds Linux's 15 characters: use a shorter tag`)
  const hosts: NetnsHost[] = Array.from({ length: options.hosts }, (_, k) => ({
    index: k + 1,
    namespace: n.namespace(k + 1),
    address: `${subnet}.${k + 1}`,
    hostVeth: n.hostVeth(k + 1),
    nsVeth: n.nsVeth(k + 1)
  }))

  let destroyed = false
  const destroySync = (): void => {
    // synchronous so it also runs from a process 'exit' handler
    if (destroyed) return
    destroyed = true
    process.off('exit', destroySync)
    for (const h of hosts) spawnSync('ip', ['link', 'delete', h.hostVeth])
    if (split !== undefined) {
      spawnSync('ip', ['link', 'delete', n.trunk])
      spawnSync('ip', ['link', 'delete', n.secondBridge])
    }
    spawnSync('ip', ['link', 'delete', n.bridge])
    for (const h of hosts) spawnSync('ip', ['netns', 'delete', h.namespace])
  }
  process.once('exit', destroySync)

  try {
    await ip('link', 'add', n.bridge, 'type', 'bridge')
    await ip('link', 'set', n.bridge, 'up')
    if (split !== undefined) {
      await ip('link', 'add', n.secondBridge, 'type', 'bridge')
      await ip('link', 'set', n.secondBridge, 'up')
      await ip('link', 'add', n.trunk, 'type', 'veth', 'peer', 'name', n.trunkPeer)
      await ip('link', 'set', n.trunk, 'master', n.bridge, 'up')
      await ip('link', 'set', n.trunkPeer, 'master', n.secondBridge, 'up')
    }
    for (const h of hosts) {
      const inner = h.nsVeth
      await ip('netns', 'add', h.namespace)
      await ip('link', 'add', h.hostVeth, 'type', 'veth', 'peer', 'name', inner)
      await ip('link', 'set', inner, 'netns', h.namespace)
      await ip('link', 'set', h.hostVeth, 'master', split !== undefined && h.index >= split ? n.secondBridge : n.bridge, 'up')
      await ip('-n', h.namespace, 'addr', 'add', `${h.address}/24`, 'dev', inner)
      await ip('-n', h.namespace, 'link', 'set', inner, 'up')
      await ip('-n', h.namespace, 'link', 'set', 'lo', 'up')
    }
  } catch (error) {
    destroySync()
    throw error
  }

  const trunk = async (state: 'up' | 'down'): Promise<void> => {
    if (split === undefined) throw new NetnsError('this topology has one segment: create it with split to cut a trunk')
    await ip('link', 'set', n.trunk, state)
  }

  return {
    hosts,
    execPrefix: (host) => ['ip', 'netns', 'exec', host.namespace],
    cut: (host) => ip('link', 'set', host.hostVeth, 'down'),
    restore: (host) => ip('link', 'set', host.hostVeth, 'up'),
    cutTrunk: async () => { await trunk('down') },
    restoreTrunk: async () => { await trunk('up') },
    addAddress: (host, address) => ip('-n', host.namespace, 'addr', 'add', `${address}/24`, 'dev', host.nsVeth),
    async destroy() {
      destroySync()
    }
  }
}
