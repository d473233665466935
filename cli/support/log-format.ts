/** How the CLI's logs look when the user does not say: for people at a terminal, else for machines. */
import type { LogFormat } from '../../config/daemon-config.js'

export const LOG_FORMAT_HELP = 'log format on stderr: pretty or json (default: pretty when stdout and stderr are terminals, else json)'

/** 'pretty' when both stdout and stderr are terminals (a person watches), else 'json'. */
export function defaultLogFormat(stdout: { isTTY?: boolean } = process.stdout, stderr: { isTTY?: boolean } = process.stderr): LogFormat {
  return stdout.isTTY === true && stderr.isTTY === true ? 'pretty' : 'json'
}
