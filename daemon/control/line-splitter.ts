/**
 * Newline-delimited framing with a hard bound: a line longer than maxLineBytes is never
 * buffered whole; the splitter reports the overflow once and ignores everything after it.
 */
export interface LineSplitter {
  /** feeds bytes; calls onLine for each complete line (without the newline) */
  push(chunk: Uint8Array): void
  /** the input ended: bytes held after the last newline are a last line (unless over the limit) */
  end(): void
  /** bytes held for an incomplete line */
  readonly pendingBytes: number
}

export interface LineSplitterOptions {
  readonly maxLineBytes: number
  readonly onLine: (line: string) => void
  /** called once when a line exceeds maxLineBytes; the splitter then drops all further input */
  readonly onOverflow: () => void
}

const NEWLINE = 0x0a

export function createLineSplitter(options: LineSplitterOptions): LineSplitter {
  const { maxLineBytes, onLine, onOverflow } = options
  let parts: Buffer[] = []
  let pending = 0
  let overflowed = false
  const decoder = new TextDecoder('utf-8')

  const emit = (tail: Buffer): void => {
    const whole = parts.length === 0 ? tail : Buffer.concat([...parts, tail])
    parts = []
    pending = 0
    const end = whole.length > 0 && whole[whole.length - 1] === 0x0d ? whole.length - 1 : whole.length
    onLine(decoder.decode(whole.subarray(0, end)))
  }

  return {
    push(chunk: Uint8Array): void {
      if (overflowed) return
      let buffer = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
      for (;;) {
        const index = buffer.indexOf(NEWLINE)
        const lineBytes = pending + (index === -1 ? buffer.length : index)
        if (lineBytes > maxLineBytes) {
          overflowed = true
          parts = []
          pending = 0
          onOverflow()
          return
        }
        if (index === -1) {
          if (buffer.length > 0) {
            parts.push(Buffer.from(buffer)) // copy: the caller may reuse its chunk
            pending += buffer.length
          }
          return
        }
        emit(buffer.subarray(0, index))
        if (overflowed) return
        buffer = buffer.subarray(index + 1)
      }
    },
    end(): void {
      if (!overflowed && pending > 0) emit(Buffer.alloc(0))
    },
    get pendingBytes(): number {
      return pending
    }
  }
}
