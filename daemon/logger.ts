import { createRequire } from 'node:module'
import { pino, type Logger } from 'pino'
import type { PinoPretty } from 'pino-pretty'
import type { LogFormat } from '../config/daemon-config.js'

export type { Logger }

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

export type { LogFormat }

export interface LoggerOptions {
  /** default 'json' */
  readonly format?: LogFormat
  /** where records go; default stderr (stdout stays free for the CLI's output) */
  readonly destination?: NodeJS.WritableStream
  /** colours in the pretty format; default: when the destination is a terminal */
  readonly colorize?: boolean
}

/**
 * Structured logs on stderr. `bindings.component` names the component of records whose logger
 * has no component of its own: pino's child() appends bindings rather than replacing them, so
 * binding `component` on the root while libraries bind theirs (`control`, `peer-node`, ...) on
 * child loggers wrote the key twice in one JSON line. Here the root's component is added at
 * write time (pino's mixin), only when the writing logger's bindings lack one.
 */
export function createLogger(level: LogLevel = 'info', bindings: Record<string, unknown> = {}, options: LoggerOptions = {}): Logger {
  const { component, ...base } = bindings
  const stream = options.format === 'pretty'
    // loaded only for the pretty format (a terminal): JSON logs do without it
    ? (createRequire(import.meta.url)('pino-pretty') as { PinoPretty: typeof PinoPretty }).PinoPretty({
      destination: options.destination ?? 2,
      sync: true,
      colorize: options.colorize ?? ((options.destination ?? process.stderr) as { isTTY?: boolean }).isTTY === true,
      singleLine: true,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname,component',
      messageFormat: '{if component}{component}: {end}{msg}'
    })
    : options.destination ?? pino.destination({ fd: 2, sync: true })
  return pino({
    level,
    base,
    ...(component !== undefined ? { mixin: (_record: object, _level: number, logger: Logger) => 'component' in logger.bindings() ? {} : { component } } : {})
  }, stream)
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' })
}
