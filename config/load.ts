/**
 * Loading configuration from files, the environment and flags.
 * Daemon precedence: flags > env (P2PMLD_*) > config file > defaults.
 */
import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { parse as parseYaml, YAMLParseError } from 'yaml'
import { formatConfigIssues } from './config-errors.js'
import { ConfigError, parseJobConfig, withMinPeersForOneProcess, type JobConfig } from './job-config.js'
import {
  DaemonConfigLayerSchema,
  DaemonConfigSchema,
  defaultDataDir,
  defaultSocketPath,
  MAX_SOCKET_PATH_BYTES,
  type DaemonConfig,
  type DaemonConfigLayer
} from './daemon-config.js'

export class ConfigFileNotFoundError extends ConfigError {
  override name = 'ConfigFileNotFoundError'
}

export class ConfigSyntaxError extends ConfigError {
  override name = 'ConfigSyntaxError'
  constructor(message: string, readonly path: string, readonly line?: number, readonly column?: number) {
    super(message)
  }
}

/** Reads a YAML or JSON file (YAML is a superset of JSON, one parser serves both). */
export function readConfigFile(path: string, what = 'config file'): unknown {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') throw new ConfigFileNotFoundError(`${what} ${path} does not exist: check the path`)
    if (code === 'EISDIR') throw new ConfigError(`${what} ${path} is a directory: pass a YAML or JSON file`)
    throw new ConfigError(`cannot read ${what} ${path}: ${(err as Error).message}`)
  }
  // a .json file is read as JSON: as YAML (JSON's superset) a trailing comma or a comment passed,
  // and the file then failed where a JSON reader (a script, the daemon of another version) read it
  if (path.toLowerCase().endsWith('.json')) {
    try {
      return JSON.parse(text) as unknown
    } catch (err) {
      const at = /at position (\d+)/.exec((err as Error).message)?.[1]
      const before = at === undefined ? undefined : text.slice(0, Number(at)).split('\n')
      const where = before === undefined ? '' : ` at line ${before.length}, column ${before[before.length - 1].length + 1}`
      const reason = (err as Error).message.replace(/ in JSON at position \d+.*$/s, '')
      throw new ConfigSyntaxError(`${what} ${path} is not valid JSON${where}: ${reason} (a .json file is read as JSON: no trailing commas or comments; name it .yaml to write YAML)`, path, before?.length, before === undefined ? undefined : before[before.length - 1].length + 1)
    }
  }
  try {
    return parseYaml(text, { prettyErrors: true, uniqueKeys: true })
  } catch (err) {
    if (err instanceof YAMLParseError) {
      const indented = err.code === 'BLOCK_AS_IMPLICIT_KEY' && err.linePos !== undefined ? overIndentedLine(text, err.linePos[0].line) : undefined
      if (indented !== undefined) {
        throw new ConfigSyntaxError(`${what} ${path} has a syntax error at line ${indented.line}: '${indented.text.trim()}' is indented more than the key on line ${indented.after}, so YAML reads it as part of that key's value: indent it like the keys around it (or, for a section, put nothing after line ${indented.after}'s colon)`, path, indented.line, indented.indent + 1)
      }
      const pos = err.linePos?.[0]
      const firstLine = err.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '')
      const where = pos === undefined ? '' : ` at line ${pos.line}, column ${pos.col}`
      throw new ConfigSyntaxError(`${what} ${path} has a syntax error${where}: ${firstLine}`, path, pos?.line, pos?.col)
    }
    throw err
  }
}

/**
 * YAML's "Nested mappings are not allowed in compact mappings" points at a value (`model: mlp`,
 * line 1) whose next line holds a key indented under it (`  epochs: 2`): that next line (1-based
 * numbers), its indent in columns and text; undefined when the lines do not look like that.
 */
function overIndentedLine(text: string, valueLine: number): { line: number, after: number, indent: number, text: string } | undefined {
  const lines = text.split(/\r?\n/)
  const indentOf = (l: string): number => l.length - l.trimStart().length
  const base = indentOf(lines[valueLine - 1] ?? '')
  for (let i = valueLine; i < lines.length; i++) {
    const l = lines[i]
    if (l.trim() === '' || l.trimStart().startsWith('#')) continue
    return indentOf(l) > base && /^\s*[^\s#][^:]*:(\s|$)/.test(l) ? { line: i + 1, after: valueLine, indent: indentOf(l), text: l } : undefined
  }
  return undefined
}

/** A YAML/JSON job file -> a validated JobConfig; errors name the file and each bad field. */
export function loadJobConfigFile(path: string, options: { readonly oneProcess?: boolean } = {}): JobConfig {
  const raw = readJobConfigFields(path)
  // one process (p2pmld train): a file written for peers (trimmed-mean, f = 2) is no error
  const fields = options.oneProcess === true && typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? withMinPeersForOneProcess(raw as Record<string, unknown>) : raw
  return parseJobConfig(fields, `job file ${path}`)
}

/**
 * A YAML/JSON job file's fields as written, not yet checked against the schema: for a caller that
 * lays flags over them first, so a flag can fix what the file alone gets wrong (minPeers too low
 * for its f). Throws ConfigError for an unreadable or empty file.
 */
export function readJobConfigFields(path: string): unknown {
  const raw = readConfigFile(path, 'job file')
  if (raw === null || raw === undefined) throw new ConfigError(`job file ${path} is empty: write a job as a YAML mapping (model, dataset, epochs, ...)`)
  return raw
}

/** keys only a job file has */
const JOB_FILE_KEYS = ['model', 'dataset', 'epochs', 'batchSize', 'optimizer', 'aggregation', 'compression', 'minPeers', 'trainSamples']

/**
 * A job file given where a daemon config goes (`p2pmld status --config job.yaml`): one line
 * saying so, instead of an unknown-key error for each of its keys.
 */
function refuseJobFile(raw: unknown, path: string): void {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return
  const jobKeys = Object.keys(raw).filter((key) => JOB_FILE_KEYS.includes(key))
  if (jobKeys.length === 0) return
  throw new ConfigError(`config file ${path} is a job file (it sets ${jobKeys.join(', ')}), where a daemon config (dataDir, socketPath, listen, ...) goes: ` +
    'give a job file to p2pmld job submit <file> or p2pmld start --config <file>, and a daemon config to --daemon-config (start) or --config (the other commands)')
}

export const DAEMON_ENV_VARS = {
  dataDir: 'P2PMLD_DATA_DIR',
  listen: 'P2PMLD_LISTEN',
  announce: 'P2PMLD_ANNOUNCE',
  bootstrap: 'P2PMLD_BOOTSTRAP',
  socketPath: 'P2PMLD_SOCKET',
  pskFile: 'P2PMLD_PSK_FILE',
  allowlist: 'P2PMLD_ALLOWLIST',
  logLevel: 'P2PMLD_LOG_LEVEL',
  logFormat: 'P2PMLD_LOG_FORMAT',
  metricsPort: 'P2PMLD_METRICS_PORT',
  metricsHost: 'P2PMLD_METRICS_HOST',
  computeThreads: 'P2PMLD_COMPUTE_THREADS',
  offload: 'P2PMLD_OFFLOAD',
  amqpUrl: 'P2PMLD_AMQP_URL',
  restartGraceMs: 'P2PMLD_RESTART_GRACE_MS',
  restartStaggerMs: 'P2PMLD_RESTART_STAGGER_MS',
  restartSeniorWaitMs: 'P2PMLD_RESTART_SENIOR_WAIT_MS'
} as const satisfies Record<keyof DaemonConfigLayer, string>
export const CONFIG_FILE_ENV_VAR = 'P2PMLD_CONFIG'

export const DAEMON_FLAGS = {
  dataDir: '--data-dir',
  listen: '--listen',
  announce: '--announce',
  bootstrap: '--bootstrap',
  socketPath: '--socket',
  pskFile: '--psk-file',
  allowlist: '--allowlist',
  logLevel: '--log-level',
  logFormat: '--log-format',
  metricsPort: '--metrics-port',
  metricsHost: '--metrics-host',
  computeThreads: '--compute-threads',
  offload: '--offload',
  amqpUrl: '--amqp-url',
  restartGraceMs: '--restart-grace-ms',
  restartStaggerMs: '--restart-stagger-ms',
  restartSeniorWaitMs: '--restart-senior-wait-ms'
} as const satisfies Record<keyof DaemonConfigLayer, string>

type LayerKey = keyof DaemonConfigLayer
const LIST_KEYS: ReadonlySet<LayerKey> = new Set(['listen', 'announce', 'bootstrap', 'allowlist'])
const PATH_KEYS: readonly LayerKey[] = ['dataDir', 'socketPath', 'pskFile']
/** numbers, given as strings by env variables and flags */
const NUMBER_KEYS: ReadonlySet<LayerKey> = new Set(['computeThreads', 'metricsPort', 'restartGraceMs', 'restartStaggerMs', 'restartSeniorWaitMs'])

export interface LoadDaemonConfigOptions {
  /** values from command-line flags; undefined entries are ignored */
  readonly flags?: { readonly [K in LayerKey]?: unknown }
  /** defaults to process.env */
  readonly env?: NodeJS.ProcessEnv
  /** a YAML/JSON config file; defaults to $P2PMLD_CONFIG when set */
  readonly configFile?: string
  /** base for relative paths given in flags or env; defaults to process.cwd() */
  readonly cwd?: string
}

export function loadDaemonConfig(options: LoadDaemonConfigOptions = {}): DaemonConfig {
  const env = options.env ?? process.env
  const cwd = options.cwd ?? process.cwd()
  const configFile = options.configFile ?? nonEmpty(env[CONFIG_FILE_ENV_VAR])

  let fileLayer: DaemonConfigLayer = {}
  if (configFile !== undefined) {
    const path = resolve(cwd, configFile)
    const raw = readConfigFile(path)
    refuseJobFile(raw, path)
    // relative paths inside a config file are relative to that file, wherever the daemon starts
    fileLayer = resolvePaths(parseLayer(raw ?? {}, `config file ${path}`, (key) => key), dirname(path))
  }
  const envLayer = resolvePaths(parseLayer(envToLayer(env), 'environment', (key) => DAEMON_ENV_VARS[key as LayerKey] ?? key), cwd)
  const flagLayer = resolvePaths(parseLayer(coerceStrings(dropUndefined(options.flags ?? {})), 'flags', (key) => DAEMON_FLAGS[key as LayerKey] ?? key), cwd)

  const merged: DaemonConfigLayer = { ...fileLayer, ...envLayer, ...flagLayer }
  const dataDir = merged.dataDir ?? defaultDataDir(env, cwd)
  const socketPath = merged.socketPath ?? defaultSocketPath(dataDir)
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH_BYTES) {
    throw new ConfigError(`socket path ${socketPath} is longer than ${MAX_SOCKET_PATH_BYTES} bytes (a Unix socket limit): use a shorter --data-dir or --socket`)
  }
  const resolved = { ...merged, dataDir, socketPath }
  const result = DaemonConfigSchema.safeParse(resolved)
  if (result.success) return result.data
  // each layer was valid alone; what is left is a rule across fields (a restart timing against
  // another), whichever layer gave them: named as a file key with its flag and variable
  const name = (key: string): string => key in DAEMON_FLAGS ? `${key} (${DAEMON_FLAGS[key as LayerKey]}, ${DAEMON_ENV_VARS[key as LayerKey]})` : key
  throw new ConfigError(`invalid daemon config:\n${formatConfigIssues(DaemonConfigSchema, result.error, resolved, name).join('\n')}`)
}

function parseLayer(raw: unknown, source: string, name: (key: string) => string): DaemonConfigLayer {
  const result = DaemonConfigLayerSchema.safeParse(raw)
  if (result.success) return result.data
  // each problem named the way the user wrote it (a file key, a flag, an env variable)
  throw new ConfigError(`invalid ${source}:\n${formatConfigIssues(DaemonConfigLayerSchema, result.error, raw, name).join('\n')}`)
}

function envToLayer(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const layer: Record<string, unknown> = {}
  for (const [key, variable] of Object.entries(DAEMON_ENV_VARS) as Array<[LayerKey, string]>) {
    const value = nonEmpty(env[variable])
    if (value !== undefined) layer[key] = value
  }
  return coerceStrings(layer)
}

/** Env values and flags arrive as strings: lists split on commas, counts become numbers. */
function coerceStrings(layer: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...layer }
  for (const [key, value] of Object.entries(layer)) {
    if (typeof value !== 'string') continue
    if (LIST_KEYS.has(key as LayerKey)) out[key] = splitList(value)
    // a non-numeric string is left as is so the schema reports it with the variable's name
    else if (NUMBER_KEYS.has(key as LayerKey) && /^\s*-?\d+(\.\d+)?\s*$/.test(value)) out[key] = Number(value)
  }
  return out
}

/** Comma- or whitespace-separated list (env vars and repeatable flags given as one string). */
export function splitList(value: string): string[] {
  return value.split(/[\s,]+/).filter((item) => item !== '')
}

function resolvePaths(layer: DaemonConfigLayer, base: string): DaemonConfigLayer {
  const out: DaemonConfigLayer = { ...layer }
  for (const key of PATH_KEYS) {
    const value = out[key]
    if (typeof value === 'string') (out as Record<string, unknown>)[key] = resolve(base, value)
  }
  return out
}

function dropUndefined(flags: { readonly [key: string]: unknown }): Record<string, unknown> {
  return Object.fromEntries(Object.entries(flags).filter(([, value]) => value !== undefined))
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value
}
