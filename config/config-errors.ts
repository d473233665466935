/**
 * Config errors that name the fix: an unknown key suggests the nearest valid one (at the same
 * level, else anywhere in the schema: a top-level `lr` is `optimizer.lr`), a value outside an
 * enum lists the allowed values (and the nearest one, for a typo). The suggestions come from
 * the zod schema itself, so they cannot drift from what the schema accepts.
 */
import { z } from 'zod'

/** Every key path a schema accepts, e.g. ['optimizer', 'lr'], with the variants a key belongs to. */
export interface KeyPath {
  readonly path: readonly string[]
  /** for keys inside a discriminated union: the discriminator values whose variant has the key */
  readonly variants: readonly string[]
}

interface SchemaDef {
  readonly type: string
  readonly shape?: Record<string, z.ZodType>
  readonly innerType?: z.ZodType
  readonly in?: z.ZodType
  readonly out?: z.ZodType
  readonly options?: readonly z.ZodType[]
  readonly discriminator?: string
  readonly values?: readonly unknown[]
  readonly entries?: Record<string, unknown>
}

const defOf = (schema: z.ZodType): SchemaDef => (schema as unknown as { _zod: { def: SchemaDef } })._zod.def

/** Unwraps defaults, optionals and pipes down to the schema that decides the shape. */
function unwrap(schema: z.ZodType): z.ZodType {
  let current = schema
  for (;;) {
    const def = defOf(current)
    if (def.innerType !== undefined && ['default', 'optional', 'nullable', 'prefault', 'readonly', 'catch', 'nonoptional'].includes(def.type)) current = def.innerType
    // a z.preprocess is a pipe from a transform: the shape is what it pipes into
    else if (def.type === 'pipe' && def.in !== undefined) current = defOf(def.in).type === 'transform' && def.out !== undefined ? def.out : def.in
    else return current
  }
}

/** The keys of an object schema, or the union of its variants' keys (each with its variants). */
function objectKeys(schema: z.ZodType): Map<string, { schema: z.ZodType, variants: string[] }> {
  const keys = new Map<string, { schema: z.ZodType, variants: string[] }>()
  const def = defOf(unwrap(schema))
  if (def.type === 'object' && def.shape !== undefined) {
    for (const [key, child] of Object.entries(def.shape)) keys.set(key, { schema: child, variants: [] })
  } else if (def.type === 'union' && def.options !== undefined) {
    for (const option of def.options) {
      const variant = def.discriminator !== undefined ? discriminatorValue(option, def.discriminator) : undefined
      for (const [key, entry] of objectKeys(option)) {
        const known = keys.get(key)
        if (known === undefined) keys.set(key, { schema: entry.schema, variants: variant !== undefined ? [variant] : [] })
        else {
          if (variant !== undefined) known.variants.push(variant)
          // the discriminator takes every variant's value (optimizer.type: sgd or adam), not the first's
          if (key === def.discriminator) known.schema = z.union([known.schema, entry.schema])
        }
      }
    }
  }
  return keys
}

function discriminatorValue(option: z.ZodType, discriminator: string): string | undefined {
  const field = objectKeys(option).get(discriminator)
  const values = field === undefined ? [] : allowedValues(field.schema) ?? []
  return values.length === 1 ? String(values[0]) : undefined
}

/** All key paths under a schema, depth first. */
export function keyPaths(schema: z.ZodType, prefix: readonly string[] = []): KeyPath[] {
  const paths: KeyPath[] = []
  for (const [key, entry] of objectKeys(schema)) {
    const path = [...prefix, key]
    paths.push({ path, variants: entry.variants })
    paths.push(...keyPaths(entry.schema, path))
  }
  return paths
}

/** The values an enum, literal or union of literals accepts; undefined for any other schema. */
export function allowedValues(schema: z.ZodType): readonly unknown[] | undefined {
  const def = defOf(unwrap(schema))
  if (def.type === 'enum' && def.entries !== undefined) return Object.values(def.entries)
  if (def.type === 'literal' && def.values !== undefined) return def.values
  if (def.type === 'union' && def.options !== undefined) {
    const values: unknown[] = []
    for (const option of def.options) {
      const inner = allowedValues(option)
      if (inner === undefined) return undefined
      values.push(...inner)
    }
    return values
  }
  return undefined
}

/** The schema at a key path (through objects and union variants), if there is one. */
export function schemaAt(schema: z.ZodType, path: readonly PropertyKey[]): z.ZodType | undefined {
  let current: z.ZodType | undefined = schema
  for (const key of path) {
    current = current === undefined ? undefined : objectKeys(current).get(String(key))?.schema
  }
  return current
}

/** Keys compare without case, dashes and underscores: batch_size and batch-size are batchSize. */
const normalize = (key: string): string => key.toLowerCase().replace(/[-_]/g, '')

/** Optimal string alignment distance (Levenshtein plus adjacent transpositions). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)])
  for (let j = 1; j <= b.length; j++) d[0][j] = j
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1)
    }
  }
  return d[a.length][b.length]
}

/**
 * The candidates nearest to `word`: within a typo's reach (a third of its length, at least 1),
 * or one being the start of the other (dataDirectory, dataDir); the closest ones only.
 */
export function nearest(word: string, candidates: readonly string[]): string[] {
  const target = normalize(word)
  const reach = Math.max(1, Math.floor(target.length / 3))
  const prefix = (a: string, b: string): boolean => Math.min(a.length, b.length) >= 3 && (a.startsWith(b) || b.startsWith(a))
  const scored = candidates
    .map((candidate) => {
      const other = normalize(candidate)
      const distance = editDistance(target, other)
      return { candidate, distance: distance > reach && prefix(target, other) ? reach : distance }
    })
    .filter(({ distance }) => distance <= reach)
  const best = Math.min(...scored.map((s) => s.distance))
  return scored.filter((s) => s.distance === best).map((s) => s.candidate)
}

const orList = (items: readonly string[]): string => items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} or ${items.at(-1)}`

/**
 * What to say about an unknown key `key` found in the object at `at`: the nearest key at that
 * level, else a key of that name (or spelling) elsewhere, as a full path.
 */
export function suggestKey(schema: z.ZodType, at: readonly PropertyKey[], key: string): string {
  const paths = keyPaths(schema)
  const prefix = at.map(String)
  const siblings = paths.filter((p) => p.path.length === prefix.length + 1 && prefix.every((k, i) => p.path[i] === k))
  const exact = siblings.find((p) => p.path.at(-1) === key)
  if (exact !== undefined && exact.variants.length > 0) {
    const discriminator = prefix.length > 0 ? `${prefix.join('.')}.type` : 'type'
    return `it applies only when ${discriminator} is ${orList(exact.variants)}`
  }
  const near = nearest(key, siblings.map((p) => p.path.at(-1) ?? ''))
  if (near.length > 0) return `did you mean ${orList(near)}?`
  const elsewhere = paths.filter((p) => p.path.length !== prefix.length + 1 || !prefix.every((k, i) => p.path[i] === k))
  const byName = nearest(key, [...new Set(elsewhere.map((p) => p.path.at(-1) ?? ''))])
  const full = elsewhere.filter((p) => byName.includes(p.path.at(-1) ?? '')).map((p) => p.path.join('.'))
  if (full.length > 0) return `did you mean ${orList([...new Set(full)])}?`
  const valid = siblings.map((p) => p.path.at(-1) ?? '')
  return valid.length > 0 ? `valid keys here: ${valid.join(', ')}` : ''
}

/** "must be one of 2, 4, 8, got 3", plus the nearest allowed value for a string typo. */
export function describeAllowed(values: readonly unknown[], got: unknown): string {
  const shown = got === undefined ? '' : `, got ${typeof got === 'string' ? `'${got}'` : JSON.stringify(got)}`
  const near = typeof got === 'string' ? nearest(got, values.filter((v): v is string => typeof v === 'string')) : []
  return `must be one of ${values.map(String).join(', ')}${shown}${near.length > 0 ? ` (did you mean ${orList(near)}?)` : ''}`
}

/** a JSON object given as a string (`--offload '{"mode": "pool"}'`), else undefined */
function parsedObject(text: string): Record<string, unknown> | undefined {
  if (!text.trim().startsWith('{')) return undefined
  try {
    const value: unknown = JSON.parse(text)
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : undefined
  } catch {
    return undefined
  }
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let current = input
  for (const key of path) {
    if (current === null || typeof current !== 'object') return undefined
    current = (current as Record<PropertyKey, unknown>)[key]
  }
  return current
}

/**
 * One line per problem, `  path: what is wrong and the fix`. `name` renames the first path
 * segment the way the user wrote it (a flag or an environment variable).
 */
export function formatConfigIssues(schema: z.ZodType, error: z.ZodError, input: unknown, name: (key: string) => string = (key) => key): string[] {
  const label = (path: readonly PropertyKey[]): string => {
    if (path.length === 0) return '(top level)'
    const first = name(String(path[0]))
    // a repeated flag's nth value ('--listen.1' read as an internal path)
    if (first.startsWith('--') && typeof path[1] === 'number') {
      const given = valueAt(input, path.slice(0, 1))
      const count = Array.isArray(given) ? given.length : 0
      return [count <= 1 ? first : `${first} (value ${path[1] + 1} of ${count})`, ...path.slice(2).map(String)].join('.')
    }
    return [first, ...path.slice(1).map(String)].join('.')
  }
  return error.issues.flatMap((issue) => {
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => {
        const hint = suggestKey(schema, issue.path, key)
        return `  ${label([...issue.path, key])}: unknown key${hint !== '' ? `: ${hint}` : ''}`
      })
    }
    const allowed = issue.code === 'invalid_value'
      ? issue.values
      : issue.code === 'invalid_union'
        ? ('options' in issue && Array.isArray(issue.options) ? issue.options as unknown[] : allowedValues(schemaAt(schema, issue.path) ?? schema))
        : undefined
    if (allowed !== undefined && allowed.length > 0) {
      // a section given as its shorthand string (`--offload gpu`, `offload: gpu`): the string is
      // the value of the section's key inside the schema, so name the section and the string
      const shorthand = valueAt(input, issue.path) === undefined && issue.path.length > 1 ? valueAt(input, issue.path.slice(0, -1)) : undefined
      if (typeof shorthand === 'string') {
        const given = parsedObject(shorthand)
        return given === undefined
          ? [`  ${label(issue.path.slice(0, -1))}: ${describeAllowed(allowed, shorthand)}`]
          : [`  ${label(issue.path)}: ${describeAllowed(allowed, given[String(issue.path.at(-1))])}`]
      }
      return [`  ${label(issue.path)}: ${describeAllowed(allowed, valueAt(input, issue.path))}`]
    }
    const section = sectionMessage(schema, issue, valueAt(input, issue.path), label(issue.path))
    if (section !== undefined) return [`  ${label(issue.path)}: ${section}`]
    const field = schemaAt(schema, issue.path)
    const whole = field !== undefined && (unwrap(field) as unknown as { isInt?: boolean }).isInt === true
    return [`  ${label(issue.path)}: ${plainMessage(issue, valueAt(input, issue.path), valueAt(input, issue.path.slice(0, -1)), whole) ?? issue.message}`]
  })
}

/**
 * A single value where the schema wants a section of keys (`optimizer: sgd`, `earlyStopping: 5`):
 * the section's keys and, where the value is one a key of the section takes, the section that
 * means it (`optimizer: { type: sgd }`); undefined for any other issue.
 */
function sectionMessage(schema: z.ZodType, issue: z.core.$ZodIssue, value: unknown, label: string): string | undefined {
  if (issue.code !== 'invalid_type' || issue.expected !== 'object' || value === null || value === undefined || (typeof value === 'object' && !Array.isArray(value))) return undefined
  const keys = objectKeys(schemaAt(schema, issue.path) ?? schema)
  if (keys.size === 0) return undefined
  // a YAML list ('- a') where keys belong: zod said 'Invalid input: expected object, received array'
  if (Array.isArray(value)) return `is a section of keys (${[...keys.keys()].join(', ')}), not a list: give its keys as key: value pairs${issue.path.length === 0 ? ', e.g. model: lenet5' : ''}`
  // the key whose values hold the one given (optimizer.type sgd, aggregation.rule mean, compression.codec qsgd)
  const named = [...keys].find(([, entry]) => (allowedValues(entry.schema) ?? []).includes(value))?.[0]
  const meant = named !== undefined ? `: write ${label}: { ${named}: ${String(value)} } (its other keys are optional)` : ''
  return `is a section of keys (${[...keys.keys()].join(', ')}), not a single value, got ${JSON.stringify(value)}${meant}`
}

/** the keys that choose a section's variant (offload mode, optimizer type, aggregation rule, compression codec) */
const DISCRIMINATORS = ['mode', 'type', 'rule', 'codec']

/**
 * A key left out that has no default, and zod's number messages (a whole-number field's bounds as
 * `must be a whole number >= 1`, as the flags word them) ('Too big: expected number to be <=65535', 'Invalid input: expected
 * int, received number', 'expected number, received string') in the words the other errors
 * use, with the value given; undefined for other issues (their message stays).
 */
function plainMessage(issue: z.core.$ZodIssue, value: unknown, parent: unknown, whole = false): string | undefined {
  const got = value === undefined ? '' : `, got ${JSON.stringify(value)}`
  // a whole-number field's bound in the words the flags use ('--batch-size must be a whole number >= 1')
  if (whole && issue.code === 'too_small' && issue.origin === 'number') return `must be a whole number >= ${issue.inclusive === false ? Math.floor(Number(issue.minimum)) + 1 : Math.ceil(Number(issue.minimum))}${got}`
  if (whole && issue.code === 'too_big' && issue.origin === 'number') return `must be a whole number <= ${issue.inclusive === false ? Math.ceil(Number(issue.maximum)) - 1 : Math.floor(Number(issue.maximum))}${got}`
  // a key with no default left out ('Invalid input: expected string, received undefined'), and
  // the choice that needs it (offload mode lambda needs its bucket)
  if (issue.code === 'invalid_type' && value === undefined && issue.path.length > 0) {
    const chosen = typeof parent === 'object' && parent !== null ? Object.entries(parent).find(([key, v]) => DISCRIMINATORS.includes(key) && typeof v === 'string') : undefined
    return `is required${chosen !== undefined ? ` with ${chosen[0]} ${String(chosen[1])}` : ''} (it has no default): give ${/^[aeiou]/.test(String(issue.expected)) ? 'an' : 'a'} ${issue.expected}`
  }
  // 'listen: /ip4/...' in a file: it read 'Invalid input: expected array, received string'
  if (issue.code === 'invalid_type' && issue.expected === 'array' && (typeof value === 'string' || typeof value === 'number')) return `is a list, got the single value ${JSON.stringify(value)}: write it as a list, [${JSON.stringify(value)}] (in YAML also a line '- ${String(value)}' under the key)`
  if (issue.code === 'too_big' && issue.origin === 'number') return `must be ${issue.inclusive === false ? 'less than' : 'at most'} ${String(issue.maximum)}${got}`
  if (issue.code === 'too_small' && issue.origin === 'number') return `must be ${issue.inclusive === false ? 'greater than' : 'at least'} ${String(issue.minimum)}${got}`
  if (issue.code === 'invalid_type' && issue.expected === 'int' && typeof value === 'number') return `must be a whole number${got}`
  if (issue.code === 'invalid_type' && (issue.expected === 'number' || issue.expected === 'int') && typeof value === 'string') return `must be a number${got}`
  // any other value of another type ('model: [1, 2]' read 'Invalid input: expected string, received array')
  if (issue.code === 'invalid_type' && value !== undefined) return `must be ${/^[aeiou]/.test(issue.expected) ? 'an' : 'a'} ${issue.expected}${got}`
  return undefined
}
