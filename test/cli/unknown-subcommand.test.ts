/** `p2pmld job start --help` (there is no `job start`) is refused with exit 1, not answered with the group's help and exit 0. */
import type { Command, CommanderError } from 'commander'
import { describe, expect, it } from 'vitest'
import { checkSubcommands, createProgram } from '../../cli/program.js'

/** the program with every command throwing instead of exiting, its error text kept */
function program(): { program: Command, errors: string[] } {
  const root = createProgram()
  const errors: string[] = []
  const quiet = (c: Command): void => {
    c.exitOverride().configureOutput({ writeErr: (text) => { errors.push(text) }, writeOut: () => {} })
    c.commands.forEach(quiet)
  }
  quiet(root)
  return { program: root, errors }
}

const refusal = (args: string[]): CommanderError | undefined => {
  const { program: p } = program()
  try {
    checkSubcommands(p, args)
    return undefined
  } catch (error) {
    return error as CommanderError
  }
}

describe('checkSubcommands', () => {
  it('refuses an unknown subcommand asked for help, naming the group and its commands', () => {
    const error = refusal(['job', 'start', '--help'])
    expect(error?.exitCode).toBe(1)
    expect(error?.code).toBe('commander.unknownCommand')
    expect(error?.message).toBe("error: unknown command 'start' for 'p2pmld job': its commands are submit, stop, pause, resume")
    expect(refusal(['functions', 'nope', '-h'])?.message).toMatch(/unknown command 'nope' for 'p2pmld functions': its commands are package, deploy/)
    expect(refusal(['jobb', '--help'])?.message).toMatch(/unknown command 'jobb' for 'p2pmld': its commands are start, train, demo/)
  })

  it('lets real paths, help itself and commands without --help through to commander', () => {
    for (const args of [['job', '--help'], ['job', 'stop', '--help'], ['train', '--model', 'lenet5', '--help'], ['help', 'job'], ['--help'], ['job', 'start'], ['status']]) {
      expect(refusal(args), args.join(' ')).toBeUndefined()
    }
  })

  it('keeps commander\'s own refusal, with its suggestion, where --help is not given', async () => {
    const { program: p, errors } = program()
    await expect(p.parseAsync(['jobb'], { from: 'user' })).rejects.toMatchObject({ code: 'commander.unknownCommand' })
    expect(errors.join('')).toMatch(/Did you mean job\?/)
  })
})
