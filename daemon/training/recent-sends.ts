/**
 * What this peer sent for the steps it completed last, kept to send again: to members of the
 * previous step that report they lack it (a lost message, `resendPrevious`) and to a member found
 * behind (`replay`, once per member and step). Each kept step's payload must stay valid while kept:
 * the trainer encodes into a ring of buffers larger than `limit`.
 */
export interface RecentSends {
  /** keep `step`'s send (replacing an earlier one of that step), dropping the oldest past `limit` */
  remember(step: number, members: readonly string[], resend: (to: readonly string[]) => void): void
  /** sends step `step - 1`'s gradient again to those of `recipients` that were members of it, if it is kept */
  resendPrevious(step: number, recipients: readonly string[]): void
  /**
   * Sends `step`'s gradient to `to` if kept, `to` was a member of it and has not had it replayed,
   * unless `skip()` says no; returns whether it did.
   */
  replay(step: number, to: string, skip: () => boolean): boolean
}

export function createRecentSends(selfId: string, limit: number): RecentSends {
  /** the newest last; `replayed`: whom it was replayed to already */
  const sends: Array<{ readonly step: number, readonly members: readonly string[], resend(to: readonly string[]): void, readonly replayed: Set<string> }> = []
  return {
    remember(step, members, resend) {
      if (sends.at(-1)?.step === step) sends.pop()
      sends.push({ step, members, resend, replayed: new Set() })
      while (sends.length > limit) sends.shift()
    },
    resendPrevious(step, recipients) {
      const previous = sends.find((s) => s.step === step - 1)
      if (previous === undefined) return
      const to = recipients.filter((id) => id !== selfId && previous.members.includes(id))
      if (to.length > 0) previous.resend(to)
    },
    replay(step, to, skip) {
      const sent = sends.find((s) => s.step === step)
      if (sent === undefined || to === selfId || !sent.members.includes(to) || sent.replayed.has(to) || skip()) return false
      sent.replayed.add(to)
      sent.resend([to])
      return true
    }
  }
}
