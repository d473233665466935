/**
 * A run report from a checkpoint (a stopped daemon, or a job long gone): the config, the epoch
 * history, the membership, a finished job's result and the parameter digest it holds. Stage times and traffic are not
 * in a checkpoint, so those sections stay empty.
 */
import { existsSync } from 'node:fs'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
// the modules themselves, not their index files: those pull in libp2p's node and the exporter
import { loadOrCreatePeerKey, peerKeyPath } from '../../protocols/node/peer-key.js'
import { dirname } from 'node:path'
import { checkpointFileAt, readCheckpointFile } from '../checkpoint/checkpoint.js'
import { fromTrainingSnapshot } from '../job/snapshot-conversion.js'
import { parameterDigest } from '../training/training-state.js'
import { buildRunReport } from './build-report.js'
import type { RunReport } from './report-schema.js'

/**
 * `path`: a checkpoint file, the directory holding it, or a daemon data dir (its checkpoint/).
 * @throws CheckpointError naming the path when there is no checkpoint or it is corrupt
 */
export async function reportFromCheckpoint(path: string): Promise<RunReport> {
  const file = await checkpointFileAt(path) ?? path
  const peerId = await peerIdNear(dirname(file))
  const raw = await readCheckpointFile(path)
  const snap = fromTrainingSnapshot(raw, `checkpoint ${file}`)
  const digest = parameterDigest(snap.params)
  return {
    ...buildRunReport({
      source: 'checkpoint',
      peerId: peerId ?? 'unknown (checkpoint)',
      jobId: snap.jobConfig.id,
      config: snap.jobConfig,
      state: snap.meta.finished ? 'finished' : 'checkpointed',
      progress: { step: snap.step, epoch: snap.epoch, lr: snap.meta.lr },
      parameterCount: snap.params.length,
      history: snap.meta.history,
      // a finished job's checkpoint keeps its result (older ones do not: then the result is empty)
      ...(snap.meta.result === undefined ? {} : { result: { ...snap.meta.result, step: snap.step, epoch: snap.epoch, history: snap.meta.history } }),
      membership: { version: snap.meta.membership.version, snapshot: snap.meta.membership },
      stages: []
    }),
    digests: { own: digest, peers: {}, agree: null }
  }
}

/** The peer id of the data dir a checkpoint lives in, when its key file is there (never creates one). */
async function peerIdNear(path: string): Promise<string | undefined> {
  for (const dir of [path, dirname(path), dirname(dirname(path))]) {
    if (existsSync(peerKeyPath(dir))) return peerIdFromPrivateKey(await loadOrCreatePeerKey(dir)).toString()
  }
  return undefined
}
