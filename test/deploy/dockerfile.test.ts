/**
 * deploy/Dockerfile: linted (hadolint when it is installed; dockerfile-utils, the VS Code Docker
 * linter, always) and checked for what the issue asks: multi-stage, a non-root user, the data dir
 * as a volume where the daemon keeps its state, the listen port exposed, and a build stage that
 * copies every source directory the build compiles.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { DockerfileParser, type Instruction } from 'dockerfile-ast'
import { validate } from 'dockerfile-utils'
import { describe, expect, it } from 'vitest'

const ROOT = resolve(import.meta.dirname, '../..')
const DOCKERFILE = join(ROOT, 'deploy/Dockerfile')
const text = readFileSync(DOCKERFILE, 'utf8')
const dockerfile = DockerfileParser.parse(text)
const args = (i: Instruction): string[] => i.getArguments().map((a) => a.getValue())
/** JSON-form arguments (VOLUME ["/data"], CMD [...]) as their values */
const jsonArgs = (i: Instruction): string[] => JSON.parse(args(i).join(' ')) as string[]

describe('deploy/Dockerfile', () => {
  it('has no lint findings (dockerfile-utils)', () => {
    expect(validate(text).map((d) => `line ${d.range.start.line + 1}: ${d.message}`)).toEqual([])
    // the linter does find problems: a broken file is not silently accepted
    expect(validate('FROM node:20\nEXPOSE abc\nUSER\n').length).toBe(2)
  })

  it('passes hadolint where it is installed', () => {
    const which = spawnSync('hadolint', ['--version'], { encoding: 'utf8' })
    if (which.error !== undefined) {
      console.warn('test/deploy: hadolint is not installed (Debian does not package it): linted with dockerfile-utils only')
      return
    }
    const run = spawnSync('hadolint', [DOCKERFILE], { encoding: 'utf8' })
    expect(run.status, run.stdout + run.stderr).toBe(0)
  })

  it('builds in one stage and runs as a non-root user in another', () => {
    const stages = dockerfile.getFROMs()
    expect(stages.length).toBeGreaterThanOrEqual(2)
    const runtime = dockerfile.getInstructions().filter((i) => i.getRange().start.line > stages.at(-1)!.getRange().start.line)
    const users = runtime.filter((i) => i.getKeyword() === 'USER').map((i) => args(i)[0])
    expect(users.length).toBeGreaterThan(0)
    expect(['root', '0', '0:0']).not.toContain(users.at(-1))
    // the runtime stage takes the compiled daemon from the build stage, not the build context
    const copies = runtime.filter((i) => i.getKeyword() === 'COPY')
    expect(copies.every((c) => /--from=build\b/.test(c.getTextContent() ?? ''))).toBe(true)
  })

  it('keeps the daemon\'s data dir on a volume and exposes the listen port', () => {
    const all = dockerfile.getInstructions()
    const volume = all.find((i) => i.getKeyword() === 'VOLUME')
    expect(volume && jsonArgs(volume)).toEqual(['/data'])
    const env = all.filter((i) => i.getKeyword() === 'ENV').flatMap(args)
    expect(env).toContain('P2PMLD_DATA_DIR=/data')
    expect(env).toContain('P2PMLD_LISTEN=/ip4/0.0.0.0/tcp/4001')
    const expose = all.find((i) => i.getKeyword() === 'EXPOSE')
    expect(expose && args(expose)).toEqual(['4001/tcp'])
    const entry = all.find((i) => i.getKeyword() === 'ENTRYPOINT')
    expect(entry && jsonArgs(entry)).toEqual(['p2pmld'])
  })

  it('copies every source the build compiles, and none of them is excluded by its .dockerignore', () => {
    const includes = (JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8')) as { include: string[] }).include
    const copied = dockerfile.getInstructions()
      .filter((i) => i.getKeyword() === 'COPY' && !/--from=/.test(i.getTextContent() ?? ''))
      .flatMap((i) => args(i).slice(0, -1))
    // build/: the bundler npm run build runs after tsc
    for (const path of [...includes, 'build', 'package.json', 'package-lock.json', 'tsconfig.json']) {
      expect(copied, path).toContain(path)
    }
    for (const path of copied) expect(existsSync(join(ROOT, path)), path).toBe(true)
    const ignored = readFileSync(join(ROOT, 'deploy/Dockerfile.dockerignore'), 'utf8').split('\n').filter((l) => l !== '' && !l.startsWith('#'))
    for (const path of copied) expect(ignored, path).not.toContain(path)
  })
})
