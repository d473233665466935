/**
 * Why a job has not started (or a resumed host not gone on) yet, in words for `p2pmld status`:
 * the members that have joined or are back against minPeers, and what the user can do.
 */

export interface StartWait {
  /** the step the job starts (or resumes) at */
  readonly step: number
  readonly minPeers: number
  /** this peer hosts the job */
  readonly host: boolean
  /** the members listed at `step` */
  readonly listed: readonly string[]
  /** a resumed host: those of `listed` not heard from since (empty otherwise) */
  readonly notBack: readonly string[]
  /** a member waiting for the start: the host, when it has not been heard from for a few seconds */
  readonly silentHost?: string
}

export function describeStartWait(w: StartWait): string {
  const { step, minPeers, listed } = w
  if (w.notBack.length > 0) {
    return `resumed from the checkpoint at step ${step}: ${listed.length - w.notBack.length} of the ${minPeers} members it needs (minPeers, this peer included) are back; ` +
      `not back yet: ${w.notBack.join(', ')}` + (minPeers < listed.length ? ` (once ${minPeers} are back the job goes on without those not back then)` : '')
  }
  // a resumed host all of whose listed members are back, still below minPeers: a new member must join
  if (w.host && step > 0) return `resumed from the checkpoint at step ${step}: ${listed.length} of the ${minPeers} members it needs (minPeers, this peer included) are back; the checkpoint lists no other: waiting for another member to join (a former member not listed, or a new one)`
  const count = `${listed.length} of the ${minPeers} members it needs (minPeers, the host included) have joined`
  if (w.host || step > 0) return `waiting for members: ${count}`
  // a host stopped before its start sends no leave (it resumes the job when started again, and
  // asks its members back): the member keeps waiting, but says the host is silent
  return `waiting for the host to start the job: ${count}` +
    (w.silentHost !== undefined ? `; the host ${w.silentHost} has not been heard from for a few seconds (stopped, or cut off): this member waits for it to come back (a restarted host resumes the job and asks its members back), or stop it with p2pmld stop` : '')
}
