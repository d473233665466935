import { expect, it } from 'vitest'
import { createLineSplitter } from '../../daemon/control/line-splitter.js'

function collect(maxLineBytes: number): { lines: string[], overflows: number, push: (s: string | Uint8Array) => void, pending: () => number, end: () => void } {
  const lines: string[] = []
  let overflows = 0
  const splitter = createLineSplitter({ maxLineBytes, onLine: (l) => lines.push(l), onOverflow: () => { overflows++ } })
  return {
    lines,
    get overflows() { return overflows },
    push: (s) => splitter.push(typeof s === 'string' ? Buffer.from(s) : s),
    pending: () => splitter.pendingBytes,
    end: () => splitter.end()
  }
}

it('joins lines split across chunks, strips CRLF and keeps empty lines', () => {
  const c = collect(100)
  c.push('{"a":')
  c.push('1}\n{"b"')
  expect(c.lines).toEqual(['{"a":1}'])
  expect(c.pending()).toBe(4)
  c.push(':2}\r\n\nlast')
  expect(c.lines).toEqual(['{"a":1}', '{"b":2}', ''])
  expect(c.pending()).toBe(4)
})

it('decodes a multi-byte character split between chunks', () => {
  const c = collect(100)
  const bytes = Buffer.from('"héllo ✓"\n')
  for (const byte of bytes) c.push(Uint8Array.of(byte))
  expect(c.lines).toEqual(['"héllo ✓"'])
})

it('accepts a line of exactly the limit and overflows one byte past it, then ignores input', () => {
  const c = collect(8)
  c.push('12345678\n')
  expect(c.lines).toEqual(['12345678'])
  c.push('1234')
  c.push('56789')
  expect(c.overflows).toBe(1)
  expect(c.pending()).toBe(0)
  c.push('\nok\n')
  expect(c.lines).toEqual(['12345678'])
  expect(c.overflows).toBe(1)
})

it('does not copy the caller-owned chunk by reference', () => {
  const c = collect(100)
  const chunk = Buffer.from('abc')
  c.push(chunk)
  chunk.fill(0x78)
  c.push('\n')
  expect(c.lines).toEqual(['abc'])
})

it('takes what follows the last newline as a last line when the input ends, and nothing more', () => {
  const c = collect(100)
  c.push('{"a":1}\n{"b"')
  c.push(':2}')
  c.end()
  expect(c.lines).toEqual(['{"a":1}', '{"b":2}'])
  expect(c.pending()).toBe(0)
  // nothing held: no empty line
  c.end()
  expect(c.lines).toHaveLength(2)
  // an overflowed line stays dropped
  const o = collect(4)
  o.push('123456')
  o.end()
  expect(o.lines).toEqual([])
})
