/**
 * Gossipsub's fast message id for our StrictSign topics: the origin's peer id and its sequence
 * number, the same pair gossipsub's own StrictSign message id is made of, read off the raw RPC
 * message before any check.
 *
 * Gossipsub looks this id up before it verifies a message's signature and records it only after
 * a message passed, so a copy of a message it already accepted is dropped unverified (without
 * the id every copy a mesh neighbour forwards, up to D = 6, costs an Ed25519 verification before
 * it is found a duplicate), while a forged message never enters the cache: its copies are still
 * verified, and fail. A message lacking either field gets an id no accepted message has (StrictSign
 * rejects it anyway).
 */
export function fastMessageId (message: { readonly from?: Uint8Array, readonly seqno?: Uint8Array }): string {
  const { from, seqno } = message
  if (from === undefined || seqno === undefined) return ''
  return `${hex(from)}/${hex(seqno)}`
}

function hex (bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}
