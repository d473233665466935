/**
 * Issue 14: restarts from the data dir, without --bootstrap.
 * - A member killed with SIGKILL mid-training and restarted dials the members it knew
 *   (members.json) and re-joins the job they carried on, instead of resuming its checkpoint as a
 *   second, separate job.
 * - The host stopped alone and started again at once re-joins the job the two others carried on,
 *   and its previous process's leave does not evict it.
 * - Every member stopped mid-training and started again: the job goes on from the last
 *   checkpoint (the most senior member resumes it, the others re-join it) to one final digest.
 * - A member stopped while the others finish the job, started again, takes the job's final state
 *   from them and ends (it resumed its checkpoint alone and waited for members for ever).
 * - A member killed while the resumed host holds its join's reply until the start does not count:
 *   the job waits for the members actually back (counted, it went on with the dead one and each
 *   step waited out its deadline, ~2 min until evicted).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { BROKER_URL } from '../amqp/broker-names.js'
import { eventually, freePort, parseFinished, type DaemonProcess } from './support/daemon-process.js'
import { useDaemonFleet } from './support/fleet-suite.js'

const { fleet, clientFor } = useDaemonFleet('rejoin')

/**
 * Shorter restart timings for the tests whose restarted members wait out their grace (defaults:
 * 15 s of grace, 5 s of stagger, 60 s of senior wait). A restarted member asks the members it
 * knew (over the broker ~1.1 s a round) in rounds 0.5, 1, 2, 4, then 5 s apart, and decides at the
 * end of a round. With a 3 s grace the first junior resumes at the end of its second or third
 * round (~3-5 s in); a 10 s threshold (3 + 7) puts the second junior's deciding round after the 4 s
 * pause that follows, >= 5 s after the first junior's decision, as the defaults do. (A 5 s stagger
 * here left 2 s where a broker round takes 1.13-1.25 s: about what a resumed job takes to answer
 * on the broker.) The senior wait stays well past both.
 */
const RESTART_TIMINGS = ['--restart-grace-ms', '3000', '--restart-stagger-ms', '7000', '--restart-senior-wait-ms', '20000']

const JOB = ['--model', 'mlp', '--train-samples', '3072', '--batch-size', '32', '--epochs', '2', '--lr', '0.02', '--momentum', '0.9', '--min-peers', '3', '--f', '0']

async function trainingPast(daemon: DaemonProcess, step: number): Promise<void> {
  const client = clientFor(daemon)
  await eventually(async () => {
    const s = await client.status()
    return s.state === 'training' && s.step >= step ? s : undefined
  }, 90_000, `${daemon.name} training past step ${step}`)
}

// two tests at a time (maxConcurrency in vitest.config.ts): each is its own daemons, data dirs,
// ports and job, and spends most of its time in restart graces, deadlines and evictions; one at
// a time the file took ~123 s of the suite, two at a time ~84-89 s (three runs)
describe.concurrent('restarted from the data dir without --bootstrap', () => {
  it('a member killed with SIGKILL re-joins the job the others carried on', async () => {
    // f = 1 with three members: without the killed one the job is below trimmed mean's floor
    // (3 gradients) and waits for it; no step runs between its eviction and its re-join
    const host = fleet.start('host', [...JOB, '--f', '1', '--seed', '31', '--deadline-ms', '3000', '--exit-when-done'])
    const bootstrap = await host.address()
    const [stays, killed] = [1, 2].map((i) => fleet.start(`peer${i}`, ['--bootstrap', bootstrap, '--exit-when-done']))
    const killedId = (await killed.address()).split('/p2p/')[1]
    await trainingPast(host, 12)
    killed.kill('SIGKILL')
    expect(await killed.exited).toBe(-1)
    // restarted once the others evicted it (sooner, it would re-join as the member it still is)
    await eventually(() => host.logs().some((l) => l.msg === 'evicting a member that missed too many steps') ? true : undefined, 60_000, 'the host evicts the killed member')
    // same data dir, no --bootstrap, no job flags
    const again = fleet.start('peer2-again', ['--exit-when-done'], { dataDir: killed.dataDir })
    const codes = await fleet.exits([host, stays, again], 180_000)
    const context = fleet.describe()
    expect(codes, context).toEqual([0, 0, 0])
    expect(again.logs().some((l) => l.msg === 're-joining the job its members carry on'), context).toBe(true)
    expect(again.logs().some((l) => l.msg === 'joined job'), context).toBe(true)
    expect(again.logs().some((l) => l.msg === 'resumed job from checkpoint'), context).toBe(false)
    // the members' consoles say what happened to it, though no step ran in between
    for (const d of [host, stays]) {
      expect(d.stdout(), `${d.name}:\n${d.stdout().split('\n').filter((l) => !l.startsWith('epoch')).join('\n')}`).toMatch(new RegExp(`^peer ${killedId} was evicted \\(it missed too many steps\\) at step \\d+: 2 members, fewer than the aggregation rule needs \\(3\\): the job waits for a peer to join`, 'm'))
      expect(d.stdout(), d.name).toMatch(new RegExp(`^peer ${killedId} joined at step \\d+: 3 members$`, 'm'))
    }
    // and name the step the restarted member says it joined at (a trial saw 290 against 291; a
    // member printing the first membership version it saw said 19 where these said 20)
    const ownJoin = /joined job \S+ at step (\d+)/.exec(again.stdout())?.[1]
    expect(ownJoin, `${again.name}:\n${again.stdout()}`).toBeDefined()
    for (const d of [host, stays]) {
      expect(new RegExp(`^peer ${killedId} joined at step (\\d+)`, 'm').exec(d.stdout())?.[1], `${d.name}:\n${d.stdout().split('\n').filter((l) => !l.startsWith('epoch')).join('\n')}`).toBe(ownJoin)
    }
    const finished = [host, stays, again].map((d) => parseFinished(d.stdout()))
    for (const f of finished) expect(f, context).toBeDefined()
    expect(new Set(finished.map((f) => f!.digest)).size, context).toBe(1)
    expect(new Set(finished.map((f) => f!.step)).size, context).toBe(1)
    for (const d of [host, stays, again]) expect(d.problems(), d.name).toEqual([])
  }, 240_000)

  it('the host stopped alone and started again at once re-joins the job the others carry on, not evicted by its own earlier leave', async () => {
    // min-peers 2: the two others carry the job on while the host is away (20 epochs: ~15 s, time
    // enough for it to start again and re-join; a job that finished meanwhile leaves it waiting)
    const ports = await Promise.all([0, 1, 2].map(freePort))
    const listen = (i: number): string[] => ['--listen', `/ip4/127.0.0.1/tcp/${ports[i]}`]
    const job = ['--model', 'mlp', '--train-samples', '3072', '--batch-size', '32', '--epochs', '20', '--lr', '0.02', '--momentum', '0.9', '--min-peers', '2', '--f', '0']
    const host = fleet.start('alone-host', [...job, '--seed', '33', '--exit-when-done', ...listen(0)])
    const bootstrap = await host.address()
    // the second joins the running job (joining while the host starts the job with the first can
    // cost two step deadlines: not what this test is about)
    const others = [fleet.start('alone-peer1', ['--bootstrap', bootstrap, '--exit-when-done', ...listen(1)])]
    await trainingPast(host, 2)
    others.push(fleet.start('alone-peer2', ['--bootstrap', bootstrap, '--exit-when-done', ...listen(2)]))
    await eventually(async () => (await clientFor(host).status()).liveMembers === 3 ? true : undefined, 60_000, 'the second peer joined')
    await trainingPast(host, 20)
    host.kill('SIGTERM')
    expect(await host.exited, fleet.describe()).toBe(0)
    // its previous process's leave can still reach it over gossip (a message another member
    // forwards is delivered though this peer signed it: gossipsub checks the forwarder, not the author)
    const again = fleet.start('alone-host-again', ['--exit-when-done', ...listen(0)], { dataDir: host.dataDir })
    const codes = await fleet.exits([again, ...others], 180_000)
    const context = fleet.describe()
    expect(codes, context).toEqual([0, 0, 0])
    expect(again.logs().some((l) => l.msg === 're-joining the job its members carry on'), context).toBe(true)
    expect(again.logs().some((l) => l.msg === 'joined job'), context).toBe(true)
    // a leave naming this peer came from its previous process: it does not evict the new one
    expect(again.logs().filter((l) => /no longer a member/.test(String(l.msg))), context).toEqual([])
    expect(again.logs().filter((l) => l.msg === 'a member is leaving'), context).toEqual([])
    const finished = [again, ...others].map((d) => parseFinished(d.stdout()))
    for (const f of finished) expect(f, context).toBeDefined()
    expect(new Set(finished.map((f) => f!.digest)).size, context).toBe(1)
    for (const d of [host, again, ...others]) expect(d.problems(), d.name).toEqual([])
  }, 240_000)

  // with or without a checkpoint (written only on shutdown with 0), the restarted host asks the
  // members its members.json lists, kept as the membership changes (restart path: it tells them
  // all at once that its previous process left); a data dir without members.json (removed here)
  // comes back as an idle daemon that finds the job by auto-join and tells the member it asks
  for (const [checkpointEverySteps, membersFile] of [[0, true], [0, false], [10, true]] as const) it(`the host of a two-member job killed and restarted (checkpoint every ${checkpointEverySteps} steps${membersFile ? '' : ', members.json removed'}): the member waits for it, then goes on with it`, async () => {
    // mean, f = 0: the member alone holds half of the job without its most senior member, so it
    // must not train on (step-quorum.ts) and never evicts the host. The restarted host dialed
    // itself for ever (auto-join: the member names the host's dead process as its coordinator),
    // or resumed its older checkpoint, waited out three deadlines for the member, evicted it,
    // trained alone and took it back. Now it tells the member its previous process left
    const dir = mkdtempSync(join(tmpdir(), 'p2pmld-pair-'))
    const jobFile = join(dir, 'job.json')
    writeFileSync(jobFile, JSON.stringify({ checkpointEverySteps, earlyStopping: { patience: 0 } }))
    const ports = await Promise.all([0, 1].map(freePort))
    const listen = (i: number): string[] => ['--listen', `/ip4/127.0.0.1/tcp/${ports[i]}`]
    // 100 epochs: once told, the member goes on alone (~0.1 s an epoch here) until the host is
    // back (with 60, and the host joining at its next auto-join poll, not at once, one run in the
    // full suite finished before it was)
    const job = ['--config', jobFile, '--model', 'mlp', '--train-samples', '3072', '--batch-size', '32', '--epochs', '100', '--lr', '0.02', '--momentum', '0.9', '--min-peers', '2', '--aggregation', 'mean', '--f', '0']
    const name = `pair${checkpointEverySteps}${membersFile ? '' : '-nomembers'}`
    const host = fleet.start(`${name}-host`, [...job, '--seed', '35', '--exit-when-done', ...listen(0)])
    const member = fleet.start(`${name}-member`, ['--bootstrap', await host.address(), '--exit-when-done', ...listen(1)])
    await trainingPast(host, 20)
    host.kill('SIGKILL')
    expect(await host.exited).toBe(-1)
    const waiting = await eventually(async () => {
      const s = await clientFor(member).status()
      return s.state === 'waiting' ? s : undefined
    }, 30_000, 'the member waiting for the host')
    expect(waiting.waiting, fleet.describe()).toMatch(/^1 of 2 members heard from at this step, without the most senior \(\S+\)/)
    if (!membersFile) rmSync(join(host.dataDir, 'members.json'))
    const again = fleet.start(`${name}-host-again`, ['--exit-when-done', ...listen(0)], { dataDir: host.dataDir })
    const codes = await fleet.exits([again, member], 180_000)
    rmSync(dir, { recursive: true, force: true })
    const context = fleet.describe()
    expect(codes, context).toEqual([0, 0])
    // it told the member its previous process left (the member printed the leave at its step),
    // and joined at that step or later with the member's state, not its own checkpoint's
    expect(again.stdout(), context).toMatch(!membersFile
      ? /^peer \S+ counts this daemon's previous process \(it stopped without leaving\) as the coordinator of job \S+, at step \d+: told it that process left; joining with its state$/m
      : /^the members of job \S+ still count this daemon's previous process \(it stopped without leaving\) as their coordinator, at step \d+: told them it left; re-joining with their state$/m)
    const hostId = (await again.address()).split('/p2p/')[1]
    expect(member.stdout(), context).toMatch(new RegExp(`^peer ${hostId} left at step ${waiting.step}: 1 member$`, 'm'))
    expect(again.logs().some((l) => l.msg === 'resumed job from checkpoint'), context).toBe(false)
    const joinedAt = Number(/^joined job \S+ at step (\d+)/m.exec(again.stdout())?.[1])
    expect(joinedAt, context).toBeGreaterThanOrEqual(waiting.step)
    for (const d of [again, member]) expect(d.logs().filter((l) => l.msg === 'evicting a member that missed too many steps'), `${d.name}\n${context}`).toEqual([])
    const finished = [again, member].map((d) => parseFinished(d.stdout()))
    for (const f of finished) expect(f, context).toBeDefined()
    expect(new Set(finished.map((f) => f!.digest)).size, context).toBe(1)
    for (const d of [host, again, member]) expect(d.problems(), d.name).toEqual([])
  }, 240_000)

  it('every member stopped mid-training and started again: the job goes on from the last checkpoint to one digest', async () => {
    const ports = await Promise.all([0, 1, 2].map(freePort))
    const listen = (i: number): string[] => ['--listen', `/ip4/127.0.0.1/tcp/${ports[i]}`]
    const host = fleet.start('all-host', [...JOB, '--seed', '32', ...listen(0)])
    const bootstrap = await host.address()
    const joiners = [1, 2].map((i) => fleet.start(`all-peer${i}`, ['--bootstrap', bootstrap, ...listen(i)]))
    const first = [host, ...joiners]
    await trainingPast(host, 20)
    for (const d of first) d.kill('SIGTERM')
    expect(await Promise.all(first.map(async (d) => await d.exited)), fleet.describe()).toEqual([0, 0, 0])
    for (const d of first) expect(d.stdout()).not.toMatch(/job finished/)
    // stopping together, members take the leaves in their own order: a membership from one that is
    // not the coordinator for a moment is expected then, not a warning
    for (const d of first) expect(d.logs().filter((l) => Number(l.level) >= 40 && /not the coordinator as this peer sees it/.test(String(l.msg))), d.name).toEqual([])
    // each recorded the members and where they listen as it stopped: the host too (it had
    // recorded only itself, at the job's start, and restarted it resumed without asking them)
    for (const d of first) {
      const known = JSON.parse(readFileSync(join(d.dataDir, 'members.json'), 'utf8')) as { members: Array<{ peerId: string, addrs: string[] }> }
      expect(known.members.filter((m) => m.addrs.length > 0).length, d.name).toBe(3)
    }

    // all three again on their data dirs and ports, no --bootstrap, no job flags
    const second = first.map((d, i) => fleet.start(`${d.name}-again`, ['--exit-when-done', ...listen(i)], { dataDir: d.dataDir }))
    const codes = await fleet.exits(second, 180_000)
    const context = fleet.describe()
    expect(codes, context).toEqual([0, 0, 0])
    // the host (most senior) resumed the job, the others re-joined it
    const resumed = second[0].logs().find((l) => l.msg === 'resumed job from checkpoint')
    expect(resumed, context).toBeDefined()
    // after asking the members it knew (none ran the job): those its checkpoint lists count once they re-joined
    expect(resumed!.membersRestarting, context).toBe(true)
    for (const d of second.slice(1)) expect(d.logs().some((l) => l.msg === 're-joining the job its members carry on'), d.name).toBe(true)
    // and each says so on stdout, not only in the JSON log on stderr
    for (const d of second) expect(d.stdout(), d.name).toMatch(/^restarted from its data dir: asking the members it knew whether job \S+ still runs \(this peer's checkpoint is at step \d+\)$/m)
    expect(second[0].stdout(), context).toMatch(/^resumed job \S+ from the checkpoint at step \d+: this peer coordinates it; waiting for its members to come back/m)
    for (const d of second.slice(1)) expect(d.stdout(), d.name).toMatch(/^re-joining job \S+: coordinated by \S+(, which waits for its members to come back)?$/m)
    const finished = second.map((d) => parseFinished(d.stdout()))
    for (const f of finished) expect(f, context).toBeDefined()
    // 3072 / (3 x 32) = 32 steps per epoch, 2 epochs: nothing repeated, nothing skipped. One step
    // more where a member's leave took effect at a step the others were already running as it
    // stopped (a console line 'peer X left at step S' in the first run): that step counts the batches
    // of the members left at its end (sync-trainer's finishStep), one fewer, so the epoch needs one
    // more step (seen once in a fresh-clone CI run: 65, the first run's host showing 'left at step 33')
    const leftMidStep = first.some((d) => / left at step \d+: 2 members$/m.test(d.stdout()))
    for (const f of finished) expect([64, ...(leftMidStep ? [65] : [])], context).toContain(f!.step)
    expect(new Set(finished.map((f) => f!.digest)).size, context).toBe(1)
    expect(finished[0]!.accuracy).toBeGreaterThan(80)
    // the members admitted together at the resumed step fetched the host's state, not each other's (none held one yet)
    for (const d of second) expect(d.logs().filter((l) => /no state yet/.test(String(l.msg))), `${d.name}\n${context}`).toEqual([])
    for (const d of [...first, ...second]) expect(d.problems(), d.name).toEqual([])
  }, 240_000)

  // over the broker too: the members restarted together find the resumed host there (members.json
  // lists no address for them), and a joiner killed while held is noticed by its heartbeats
  // stopping (no stream closes over the broker)
  for (const transport of ['libp2p', 'amqp'] as const) it(`a member killed while the resumed host holds its join reply does not count toward the start (${transport})`, async () => {
    const broker = transport === 'amqp' ? ['--amqp-url', BROKER_URL] : []
    const ports = await Promise.all([0, 1, 2].map(freePort))
    const listen = (i: number): string[] => ['--listen', `/ip4/127.0.0.1/tcp/${ports[i]}`]
    const host = fleet.start(`held-host-${transport}`, [...JOB, '--seed', '34', ...listen(0), ...broker, ...(transport === 'amqp' ? ['--transport', 'amqp'] : [])])
    const bootstrap = await host.address()
    const joiners = [1, 2].map((i) => fleet.start(`held-peer${i}-${transport}`, ['--bootstrap', bootstrap, ...listen(i), ...broker]))
    const first = [host, ...joiners]
    const ids = await Promise.all(first.map(async (d) => (await d.address()).split('/p2p/')[1]))
    await trainingPast(host, 20)
    for (const d of first) d.kill('SIGTERM')
    expect(await Promise.all(first.map(async (d) => await d.exited)), fleet.describe()).toEqual([0, 0, 0])

    // the host and one member again: the host holds that member's reply until the third is back
    const again = fleet.start(`held-host-again-${transport}`, ['--exit-when-done', ...broker, ...listen(0)], { dataDir: host.dataDir })
    const doomed = fleet.start(`held-peer1-again-${transport}`, ['--exit-when-done', ...broker, ...listen(1)], { dataDir: joiners[0].dataDir })
    const client = clientFor(again)
    const waiting = async (pattern: RegExp, what: string): Promise<string> => await eventually(async () => {
      const s = await client.status().catch(() => undefined)
      return s?.waiting !== null && s?.waiting !== undefined && pattern.test(s.waiting) ? s.waiting : undefined
    }, 60_000, what)
    // (the checkpoint lists the members still there when it was written: '...; not back yet: <ids>',
    // or, where their leaves were recorded first, '...; the checkpoint lists no other: waiting for another member to join (a former member not listed, or a new one)')
    await waiting(/^resumed from the checkpoint at step \d+: 2 of the 3 members /, 'the host counting the member back')
    // and the member says what it waits for
    expect((await clientFor(doomed).status()).waiting, fleet.describe()).toMatch(/^joining a job: asked the coordinator \S+ for admission to job \S+( over the broker)?: waiting for its answer/)
    doomed.kill('SIGKILL')
    // the dead member's request stream closed (over the broker: its heartbeats stopped): its admission is withdrawn
    await waiting(/^resumed from the checkpoint at step \d+: 1 of the 3 members /, 'the host no longer counting the killed member')
    // withdrawn because it went away (its stream closed; over the broker its heartbeats stopped), not
    // at the end of the host's 25 s wait for the start
    const withdrawn = again.logs().filter((l) => /^withdrew the admission/.test(String(l.msg))).map((l) => String(l.why))
    expect(withdrawn, fleet.describe()).toEqual([transport === 'amqp' ? expect.stringMatching(/^no heartbeat from the joiner on the broker/) : 'the requester closed the stream before the reply'])
    // 'members' (liveMembers) counts those back, not all its checkpoint lists
    expect((await client.status()).liveMembers, fleet.describe()).toBe(1)
    const third = fleet.start(`held-peer2-again-${transport}`, ['--exit-when-done', ...broker, ...listen(2)], { dataDir: joiners[1].dataDir })
    // two of three back: still waiting (counting the dead one, it went on)
    const two = await waiting(/^resumed from the checkpoint at step \d+: 2 of the 3 members /, 'the third back')
    if (two.includes('not back yet')) expect(two, fleet.describe()).toMatch(new RegExp(`not back yet: ${ids[1]}$`))
    expect((await client.status()).state, fleet.describe()).toBe('waiting')
    const back = fleet.start(`held-peer1-back-${transport}`, ['--exit-when-done', ...broker, ...listen(1)], { dataDir: joiners[0].dataDir })
    const codes = await fleet.exits([again, third, back], 180_000)
    const context = fleet.describe()
    expect(codes, context).toEqual([0, 0, 0])
    const finished = [again, third, back].map((d) => parseFinished(d.stdout()))
    for (const f of finished) expect(f, context).toBeDefined()
    expect(new Set(finished.map((f) => f!.digest)).size, context).toBe(1)
    // no step waited for a member that was not there; members admitted at the resumed step were
    // not named each other's state donors (none held a state to give)
    for (const d of [again, third, back]) expect(d.logs().filter((l) => /step deadline passed|no state yet/.test(String(l.msg))), `${d.name}\n${context}`).toEqual([])
    // one job: the host resumed it, the others re-joined it (over the broker each resumed its own
    // checkpoint, members.json listing no address to ask them at)
    expect([again, third, back].map((d) => d.logs().some((l) => l.msg === 'resumed job from checkpoint')), context).toEqual([true, false, false])
    for (const d of [again, third, back]) expect(d.problems(), d.name).toEqual([])
  }, 240_000)

  it('a job with transport auto whose broker cannot be reached resumes on restart: the question to the broker is bounded', async () => {
    // the restart asks the broker for the job's coordinator when no member answers over libp2p;
    // a broker that cannot be reached is retried until the question is given up (the host waited
    // for ever before resuming: its members go on over libp2p without a broker)
    const dead = ['--amqp-url', 'amqp://guest:guest@127.0.0.1:1']
    const ports = await Promise.all([0, 1].map(freePort))
    const listen = (i: number): string[] => ['--listen', `/ip4/127.0.0.1/tcp/${ports[i]}`]
    const job = ['--model', 'mlp', '--train-samples', '3072', '--batch-size', '32', '--epochs', '20', '--lr', '0.02', '--momentum', '0.9', '--min-peers', '2', '--f', '0', '--transport', 'auto']
    const host = fleet.start('auto-host', [...job, '--seed', '37', ...dead, ...listen(0)])
    const member = fleet.start('auto-peer1', ['--bootstrap', await host.address(), ...dead, ...listen(1)])
    await trainingPast(host, 10)
    for (const d of [host, member]) d.kill('SIGTERM')
    expect(await Promise.all([host, member].map(async (d) => await d.exited)), fleet.describe()).toEqual([0, 0])
    // the host alone: it asks its member (down) and the broker (unreachable), then resumes and waits for the member
    const again = fleet.start('auto-host-again', [...dead, ...listen(0)], { dataDir: host.dataDir })
    const client = clientFor(again)
    const waiting = await eventually(async () => {
      const s = await client.status().catch(() => undefined)
      return s?.waiting?.startsWith('resumed from the checkpoint at step') === true ? s.waiting : undefined
    }, 40_000, 'the host resuming its checkpoint')
    expect(waiting, fleet.describe()).toMatch(/^resumed from the checkpoint at step \d+: 1 of the 2 members /)
    again.kill('SIGTERM')
    expect(await again.exited, fleet.describe()).toBe(0)
  }, 240_000)

  for (const transport of ['libp2p', 'amqp'] as const) it(`members restarted before the host resume one job, which the host re-joins (${transport})`, async () => {
    // the first junior resumes after its grace and coordinates (ranked behind the host its
    // checkpoint lists, it named the host as coordinator: the host, back as a joiner, was sent to
    // itself, and nothing trained); the second junior, a stagger later, finds that job (over the
    // broker the juniors cannot see each other: both resumed at one moment, two jobs under one id);
    // the host re-joins it as its most junior member
    const broker = transport === 'amqp' ? ['--amqp-url', BROKER_URL] : []
    const ports = await Promise.all([0, 1, 2].map(freePort))
    const listen = (i: number): string[] => ['--listen', `/ip4/127.0.0.1/tcp/${ports[i]}`]
    const host = fleet.start(`late-host-${transport}`, [...JOB, '--seed', '38', ...broker, ...(transport === 'amqp' ? ['--transport', 'amqp'] : []), ...listen(0)])
    const bootstrap = await host.address()
    const joiners = [1, 2].map((i) => fleet.start(`late-peer${i}-${transport}`, ['--bootstrap', bootstrap, ...broker, ...listen(i)]))
    const first = [host, ...joiners]
    await trainingPast(host, 20)
    for (const d of first) d.kill('SIGTERM')
    expect(await Promise.all(first.map(async (d) => await d.exited)), fleet.describe()).toEqual([0, 0, 0])
    const members = joiners.map((d, i) => fleet.start(`${d.name}-again`, ['--exit-when-done', ...RESTART_TIMINGS, ...broker, ...listen(i + 1)], { dataDir: d.dataDir }))
    // the host only once both juniors decided, each past its own grace: one resumed its checkpoint,
    // the other re-joined that job (or resumed one too: the bug, which the count below fails on)
    await eventually(() => members.every((d) => d.logs().some((l) => l.msg === 'resumed job from checkpoint' || l.msg === 're-joining the job its members carry on')) ? true : undefined, 60_000, 'both juniors resumed or re-joined')
    const again = fleet.start(`late-host-again-${transport}`, ['--exit-when-done', ...broker, ...listen(0)], { dataDir: host.dataDir })
    const second = [again, ...members]
    const codes = await fleet.exits(second, 120_000)
    const context = fleet.describe()
    expect(codes, context).toEqual([0, 0, 0])
    // one of the juniors resumed, the other and the host re-joined its job
    expect(second.filter((d) => d.logs().some((l) => l.msg === 'resumed job from checkpoint')).length, context).toBe(1)
    expect(again.logs().some((l) => l.msg === 're-joining the job its members carry on'), context).toBe(true)
    const finished = second.map((d) => parseFinished(d.stdout()))
    for (const f of finished) expect(f, context).toBeDefined()
    expect(new Set(finished.map((f) => f!.digest)).size, context).toBe(1)
    for (const d of second) expect(d.problems(), d.name).toEqual([])
  }, 240_000)

  it('a member stopped while the others finished the job, started again, takes the final state and ends', async () => {
    const ports = await Promise.all([0, 1, 2].map(freePort))
    const listen = (i: number): string[] => ['--listen', `/ip4/127.0.0.1/tcp/${ports[i]}`]
    const job = ['--model', 'mlp', '--train-samples', '3072', '--batch-size', '32', '--epochs', '6', '--lr', '0.02', '--momentum', '0.9', '--min-peers', '2', '--f', '0']
    const host = fleet.start('after-host', [...job, '--seed', '36', ...listen(0)])
    const bootstrap = await host.address()
    const stays = fleet.start('after-peer1', ['--bootstrap', bootstrap, ...listen(1)])
    await trainingPast(host, 2)
    const away = fleet.start('after-peer2', ['--bootstrap', bootstrap, ...listen(2)])
    await trainingPast(away, 30)
    away.kill('SIGTERM')
    expect(await away.exited, fleet.describe()).toBe(0)
    // the two others finish and stay up (no --exit-when-done)
    for (const d of [host, stays]) await eventually(async () => (await clientFor(d).status()).state === 'finished' ? true : undefined, 120_000, `${d.name} finished`)
    const again = fleet.start('after-peer2-again', ['--exit-when-done', ...listen(2)], { dataDir: away.dataDir })
    const [code] = await fleet.exits([again], 60_000)
    const context = fleet.describe()
    expect(code, context).toBe(0)
    expect(again.logs().some((l) => l.msg === 'the job finished while this daemon was away: taking its final state'), context).toBe(true)
    // from both members that finished it, checked against the digest they announce (f + 1 = 1 here;
    // not from one member unchecked)
    const fetched = again.logs().find((l) => typeof l.msg === 'string' && l.msg.startsWith('fetched the state'))
    expect(fetched, context).toMatchObject({ verified: true })
    expect((fetched?.from as string[] | undefined)?.length, context).toBe(2)
    expect(again.logs().some((l) => l.msg === 'resumed job from checkpoint'), context).toBe(false)
    const finished = [host, stays, again].map((d) => parseFinished(d.stdout()))
    for (const f of finished) expect(f, context).toBeDefined()
    expect(new Set(finished.map((f) => f!.digest)).size, context).toBe(1)
    expect(new Set(finished.map((f) => f!.step)).size, context).toBe(1)
    // started once more with --exit-when-done: its job is done, it exits (idle, it waited for a next job for ever)
    const thrice = fleet.start('after-peer2-thrice', ['--exit-when-done', ...listen(2)], { dataDir: away.dataDir })
    expect(await fleet.exits([thrice], 30_000), fleet.describe()).toEqual([0])
    expect(thrice.stdout(), fleet.describe()).toMatch(/^job \S+ had finished \(step \d+, in the checkpoint\) before this start: nothing to run; exiting \(--exit-when-done\)$/m)
    for (const d of [host, stays, away, again, thrice]) expect(d.problems(), d.name).toEqual([])
  }, 240_000)
})
