/**
 * A strict reader of the Prometheus text exposition format (0.0.4) for tests: every sample
 * line must parse, every sample must belong to a family declared by # HELP and # TYPE, and a
 * histogram's buckets must be cumulative and end with +Inf equal to its _count.
 */
export interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

export interface Family {
  readonly name: string
  readonly type: string
  readonly help: string
  readonly samples: Sample[]
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)/gy

export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>()
  const help = new Map<string, string>()
  for (const line of text.split('\n')) {
    if (line === '') continue
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line)
    if (meta !== null) {
      if (meta[1] === 'HELP') help.set(meta[2], meta[3])
      else families.set(meta[2], { name: meta[2], type: meta[3], help: help.get(meta[2]) ?? '', samples: [] })
      continue
    }
    const m = SAMPLE.exec(line)
    if (m === null) throw new Error(`not an exposition line: ${line}`)
    const labels: Record<string, string> = {}
    if (m[2] !== undefined && m[2] !== '') {
      LABEL.lastIndex = 0
      let consumed = 0
      for (let l = LABEL.exec(m[2]); l !== null; l = LABEL.exec(m[2])) {
        labels[l[1]] = l[2].replace(/\\(.)/g, (_, c: string) => c === 'n' ? '\n' : c)
        consumed = LABEL.lastIndex
      }
      if (consumed !== m[2].length) throw new Error(`bad labels in: ${line}`)
    }
    const value = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3])
    if (Number.isNaN(value) && m[3] !== 'NaN') throw new Error(`bad value in: ${line}`)
    const family = families.get(m[1]) ?? families.get(m[1].replace(/_(bucket|sum|count)$/, ''))
    if (family === undefined) throw new Error(`sample without # TYPE: ${line}`)
    family.samples.push({ name: m[1], labels, value })
  }
  for (const family of families.values()) {
    if (family.type !== 'histogram') continue
    const series = new Map<string, Sample[]>()
    for (const s of family.samples) {
      if (!s.name.endsWith('_bucket')) continue
      const { le, ...rest } = s.labels
      void le
      const key = JSON.stringify(rest)
      series.set(key, [...(series.get(key) ?? []), s])
    }
    for (const [key, buckets] of series) {
      for (let i = 1; i < buckets.length; i++) {
        if (buckets[i].value < buckets[i - 1].value) throw new Error(`${family.name}${key}: buckets not cumulative`)
      }
      const count = family.samples.find((s) => s.name === `${family.name}_count` && JSON.stringify(s.labels) === key)
      if (buckets.at(-1)?.labels.le !== '+Inf' || count?.value !== buckets.at(-1)?.value) throw new Error(`${family.name}${key}: +Inf bucket differs from _count`)
    }
  }
  return families
}

/** The value of the sample `name` whose labels include `labels`, or undefined. */
export function sampleValue(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  const family = families.get(name) ?? families.get(name.replace(/_(bucket|sum|count)$/, ''))
  return family?.samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value
}

export async function scrape(url: string): Promise<Map<string, Family>> {
  const response = await fetch(url)
  if (response.status !== 200) throw new Error(`${url}: HTTP ${response.status}`)
  if (!(response.headers.get('content-type') ?? '').startsWith('text/plain; version=0.0.4')) throw new Error(`${url}: content-type ${response.headers.get('content-type')}`)
  return parseExposition(await response.text())
}
