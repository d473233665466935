/**
 * A small interpreter for the part of the Amazon States Language (https://states-language.net/spec.html)
 * that p2pmld's state machines use, for the Step Functions stand-in: Task (Resource, TimeoutSeconds,
 * Retry, Catch), Map (ItemsPath, MaxConcurrency, Iterator or ItemProcessor), Pass (Parameters,
 * Result), Succeed and Fail; InputPath, Parameters, ResultPath and OutputPath with reference paths
 * (`$`, `$.a.b`, `$.a[0]`). Anything else in a definition is refused by name, so a definition that
 * grows a feature this stand-in does not model fails its test instead of running differently.
 *
 * Semantics follow the spec: a Retrier's MaxAttempts (default 3) counts retries after the first
 * attempt, waiting IntervalSeconds (default 1) x BackoffRate (default 2)^n; `States.ALL` matches
 * every error but the terminal ones (`States.Runtime`, `States.DataLimitExceeded`: a state's
 * input or output over 256 KiB), `States.TaskFailed` every error but those and `States.Timeout`;
 * a Catcher puts
 * `{ Error, Cause }` at its ResultPath (default `$`) and goes to its Next; a Map's result is the
 * array of its iterations' outputs, in item order. Not modelled: a failed iteration cancelling
 * its siblings, an inline Map's concurrency cap (~40), IAM and eventual consistency.
 */

/** An error a state raised: `name` is the ASL error name (`States.Timeout`, a function's errorType, ...). */
export class StatesError extends Error {
  constructor(name: string, override readonly cause: string) {
    super(cause)
    this.name = name
  }
}

/** Runs one Task state's Resource on its effective input; throws a StatesError for a task failure. */
export type ResourceInvoker = (resource: string, input: unknown) => Promise<unknown>

interface Retrier { ErrorEquals: string[], IntervalSeconds?: number, MaxAttempts?: number, BackoffRate?: number }
interface Catcher { ErrorEquals: string[], Next: string, ResultPath?: string | null }
interface StateMachineDefinition { StartAt: string, States: Record<string, State> }
interface State {
  Type: string
  Next?: string
  End?: boolean
  InputPath?: string | null
  OutputPath?: string | null
  ResultPath?: string | null
  Parameters?: unknown
  Result?: unknown
  Resource?: string
  TimeoutSeconds?: number
  Retry?: Retrier[]
  Catch?: Catcher[]
  ItemsPath?: string
  MaxConcurrency?: number
  Iterator?: StateMachineDefinition
  ItemProcessor?: StateMachineDefinition
  Error?: string
  Cause?: string
  Comment?: string
}

const FIELDS: Record<string, string[]> = {
  Task: ['Resource', 'TimeoutSeconds', 'Retry', 'Catch', 'Parameters', 'ResultPath'],
  Map: ['ItemsPath', 'MaxConcurrency', 'Iterator', 'ItemProcessor', 'Retry', 'Catch', 'Parameters', 'ResultPath'],
  Pass: ['Parameters', 'Result', 'ResultPath'],
  Succeed: [],
  Fail: ['Error', 'Cause']
}
const COMMON = ['Type', 'Next', 'End', 'Comment', 'InputPath', 'OutputPath']

/** `$`, `$.a.b`, `$.a[0].b` -> path segments; anything else is refused. */
function segments(path: string): Array<string | number> {
  if (path === '$') return []
  if (!path.startsWith('$')) throw new StatesError('States.Runtime', `the stand-in reads only reference paths starting with $, not '${path}'`)
  const out: Array<string | number> = []
  const re = /\.([A-Za-z_][\w-]*)|\[(\d+)\]/y
  re.lastIndex = 1
  while (re.lastIndex < path.length) {
    const m = re.exec(path)
    if (m === null) throw new StatesError('States.Runtime', `the stand-in cannot read the path '${path}'`)
    out.push(m[1] ?? Number(m[2]))
  }
  return out
}

function read(value: unknown, path: string): unknown {
  let at = value
  for (const key of segments(path)) {
    if (at === null || typeof at !== 'object' || !(key in (at as object))) throw new StatesError('States.Runtime', `the path '${path}' matches nothing in the state's input`)
    at = (at as Record<string | number, unknown>)[key]
  }
  return at
}

function write(target: unknown, path: string | null | undefined, result: unknown): unknown {
  if (path === null) return target
  const keys = segments(path ?? '$')
  if (keys.length === 0) return result
  const root = structuredClone(target ?? {}) as Record<string | number, unknown>
  let at = root
  for (const key of keys.slice(0, -1)) {
    if (at[key] === null || typeof at[key] !== 'object') at[key] = {}
    at = at[key] as Record<string | number, unknown>
  }
  at[keys.at(-1)!] = result
  return root
}

/** Payload template: keys ending in `.$` take the value at their path in `input`. */
function template(parameters: unknown, input: unknown): unknown {
  if (Array.isArray(parameters)) return parameters.map((p) => template(p, input))
  if (parameters === null || typeof parameters !== 'object') return parameters
  return Object.fromEntries(Object.entries(parameters).map(([key, value]) =>
    key.endsWith('.$') ? [key.slice(0, -2), read(input, String(value))] : [key, template(value, input)]))
}

/** errors no Retrier or Catcher handles (the spec: States.Runtime; AWS: States.DataLimitExceeded too) */
const TERMINAL = new Set(['States.Runtime', 'States.DataLimitExceeded'])
const matches = (errorEquals: string[], name: string): boolean =>
  !TERMINAL.has(name) && (errorEquals.includes(name) || errorEquals.includes('States.ALL') || (errorEquals.includes('States.TaskFailed') && name !== 'States.Timeout'))

/** Step Functions' limit on an execution's input and every state's input and output: 256 KiB of UTF-8 JSON */
const PAYLOAD_LIMIT = 256 * 1024
function withinLimit(value: unknown, what: string): unknown {
  const bytes = Buffer.byteLength(JSON.stringify(value ?? null))
  if (bytes > PAYLOAD_LIMIT) throw new StatesError('States.DataLimitExceeded', `${what} is ${bytes} bytes, over the ${PAYLOAD_LIMIT}-byte payload limit`)
  return value
}

const asStatesError = (error: unknown): StatesError =>
  error instanceof StatesError ? error : new StatesError((error as Error)?.name ?? 'Error', (error as Error)?.message ?? String(error))

function check(definition: StateMachineDefinition, where: string): void {
  if (typeof definition?.StartAt !== 'string' || definition.States?.[definition.StartAt] === undefined) throw new StatesError('States.Runtime', `${where}: StartAt names no state`)
  for (const [name, state] of Object.entries(definition.States)) {
    const allowed = FIELDS[state.Type]
    if (allowed === undefined) throw new StatesError('States.Runtime', `${where}.${name}: the stand-in does not interpret ${state.Type} states`)
    const extra = Object.keys(state).filter((key) => !COMMON.includes(key) && !allowed.includes(key))
    if (extra.length > 0) throw new StatesError('States.Runtime', `${where}.${name}: the stand-in does not interpret ${extra.join(', ')}`)
    const inner = state.Iterator ?? state.ItemProcessor
    if (inner !== undefined) check(inner, `${where}.${name}`)
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Runs `definition` on `input` to its end: resolves with the execution's output, rejects with a
 * StatesError (the execution's error and cause) when a state fails with no Catcher for it.
 * Throws at once if the definition uses anything this interpreter does not model.
 */
export async function runStateMachine(definition: unknown, input: unknown, invoke: ResourceInvoker): Promise<unknown> {
  const machine = definition as StateMachineDefinition
  check(machine, 'States')
  withinLimit(input, 'the execution input')
  return await runStates(machine, input, invoke)
}

async function runStates(machine: StateMachineDefinition, input: unknown, invoke: ResourceInvoker): Promise<unknown> {
  let name = machine.StartAt
  let data = input
  for (;;) {
    const state = machine.States[name]
    const effective = state.InputPath === null ? {} : read(data, state.InputPath ?? '$')
    let next: string | undefined
    try {
      data = withinLimit(await runState(state, data, effective, invoke), `the output of state ${name}`)
      next = state.Next
    } catch (error) {
      const failure = asStatesError(error)
      const catcher = state.Catch?.find((c) => matches(c.ErrorEquals, failure.name))
      if (catcher === undefined) throw failure
      data = write(data, catcher.ResultPath, { Error: failure.name, Cause: failure.cause })
      next = catcher.Next
    }
    if (state.Type === 'Succeed' || (state.End === true && next === undefined)) return data
    if (next === undefined || machine.States[next] === undefined) throw new StatesError('States.Runtime', `state ${name} goes to '${String(next)}', which is not a state`)
    name = next
  }
}

/** One state: its output (OutputPath applied), or a thrown StatesError once its Retriers gave up. */
async function runState(state: State, raw: unknown, effective: unknown, invoke: ResourceInvoker): Promise<unknown> {
  const output = (result: unknown): unknown => {
    const merged = write(raw, state.ResultPath, result)
    return state.OutputPath === null ? {} : read(merged, state.OutputPath ?? '$')
  }
  switch (state.Type) {
    case 'Pass':
      return output(state.Parameters !== undefined ? template(state.Parameters, effective) : state.Result ?? effective)
    case 'Succeed':
      return output(effective)
    case 'Fail':
      throw new StatesError(state.Error ?? 'States.Fail', state.Cause ?? '')
  }
  const attempt = async (): Promise<unknown> => {
    const payload = state.Parameters !== undefined ? template(state.Parameters, effective) : effective
    if (state.Type === 'Map') return await runMap(state, payload, invoke)
    if (state.TimeoutSeconds === undefined) return await invoke(state.Resource!, payload)
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new StatesError('States.Timeout', `the task ran past its TimeoutSeconds (${state.TimeoutSeconds})`)), state.TimeoutSeconds! * 1000)
    })
    try {
      return await Promise.race([invoke(state.Resource!, payload), timeout])
    } finally {
      clearTimeout(timer)
    }
  }
  const retries = new Map<Retrier, number>()
  for (;;) {
    try {
      return output(await attempt())
    } catch (error) {
      const failure = asStatesError(error)
      const retrier = state.Retry?.find((r) => matches(r.ErrorEquals, failure.name))
      const done = retries.get(retrier!) ?? 0
      if (retrier === undefined || done >= (retrier.MaxAttempts ?? 3)) throw failure
      retries.set(retrier, done + 1)
      await sleep((retrier.IntervalSeconds ?? 1) * 1000 * (retrier.BackoffRate ?? 2) ** done)
    }
  }
}

/** A Map state's iterations, at most MaxConcurrency at a time (0 or absent: all at once). */
async function runMap(state: State, input: unknown, invoke: ResourceInvoker): Promise<unknown[]> {
  const items = read(input, state.ItemsPath ?? '$')
  if (!Array.isArray(items)) throw new StatesError('States.Runtime', `Map: ItemsPath '${state.ItemsPath ?? '$'}' is not an array`)
  const inner = (state.Iterator ?? state.ItemProcessor)!
  const results = new Array<unknown>(items.length)
  const width = state.MaxConcurrency === undefined || state.MaxConcurrency === 0 ? items.length : state.MaxConcurrency
  let cursor = 0
  const lane = async (): Promise<void> => {
    while (cursor < items.length) {
      const index = cursor++
      results[index] = await runStates(inner, items[index], invoke)
    }
  }
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, lane))
  return results
}
