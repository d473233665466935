/**
 * What made `npm ci` and every `npx p2pmld` warn, checked on the lockfile: a dependency whose
 * engines exclude our oldest Node (EBADENGINE), an install script allowScripts does not decide
 * (npm 11.16+ "install-scripts" notice; onnxruntime-node's would fetch CUDA binaries from
 * nuget.org), and an .npmrc key npm does not know (a warning now, an error in npm 12).
 */
import { existsSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'

const ROOT = resolve(import.meta.dirname, '../..')
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string }, allowScripts?: Record<string, boolean> }
const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string, engines?: { node?: string }, hasInstallScript?: boolean, dev?: boolean }> }

type Version = [number, number, number]
const parse = (v: string): Version => {
  const [a = 0, b = 0, c = 0] = v.replace(/^v/, '').split('.').map((x) => (x === 'x' || x === '*' ? 0 : Number(x)))
  if ([a, b, c].some((n) => !Number.isInteger(n))) throw new Error(`cannot read version '${v}'`)
  return [a, b, c]
}
const compare = (x: Version, y: Version): number => x[0] - y[0] || x[1] - y[1] || x[2] - y[2]

/** Whether `version` satisfies an engines range of the forms dependencies use (>=, >, <, <=, ^, ~, x, ||). */
function satisfies(version: string, range: string): boolean {
  const v = parse(version)
  return range.replace(/(>=|<=|>|<|\^|~|=)\s+/g, '$1').split('||').some((alternative) => alternative.trim().split(/\s+/).filter((c) => c !== '').every((comparator) => {
    const m = /^(>=|<=|>|<|\^|~|=)?\s*(\d+(?:\.(?:\d+|x|\*))*|\*)$/.exec(comparator)
    if (m === null) throw new Error(`cannot read engines range '${range}'`)
    if (m[2] === '*') return true
    const bound = parse(m[2])
    const parts = m[2].split('.').filter((p) => p !== 'x' && p !== '*').length
    switch (m[1]) {
      case '>=': return compare(v, bound) >= 0
      case '>': return compare(v, bound) > 0
      case '<=': return compare(v, bound) <= 0
      case '<': return compare(v, bound) < 0
      case '^': return compare(v, bound) >= 0 && v[0] === bound[0]
      case '~': return compare(v, bound) >= 0 && v[0] === bound[0] && (parts < 2 || v[1] === bound[1])
      default: return v[0] === bound[0] && (parts < 2 || v[1] === bound[1]) && (parts < 3 || v[2] === bound[2])
    }
  }))
}

describe('a clean install warns about nothing', () => {
  const oldestNode = /^>=\s*(\d+\.\d+(?:\.\d+)?)$/.exec(pkg.engines.node)?.[1]

  it('every package npm ci installs, dev dependencies included, runs on the oldest Node our engines admit', () => {
    expect(oldestNode, `engines.node '${pkg.engines.node}' is a plain >= range`).toBeDefined()
    const excluded = Object.entries(lock.packages)
      .filter(([path, p]) => path !== '' && p.engines?.node !== undefined && !satisfies(oldestNode!, p.engines.node))
      .map(([path, p]) => `${path}@${p.version} wants node ${p.engines!.node}${p.dev === true ? ' (dev)' : ''}`)
    expect(excluded).toEqual([])
  })

  it('allowScripts decides every dependency install script, and denies onnxruntime-node\'s download', () => {
    const withScripts = Object.entries(lock.packages).filter(([, p]) => p.hasInstallScript === true).map(([path]) => path.split('node_modules/').at(-1)!)
    expect(withScripts.length).toBeGreaterThan(0)
    for (const name of withScripts) expect(pkg.allowScripts?.[name], name).toBeTypeOf('boolean')
    expect(pkg.allowScripts?.['onnxruntime-node']).toBe(false)
  })

  it('no .npmrc key npm does not know', () => {
    const npmrc = join(ROOT, '.npmrc')
    if (existsSync(npmrc)) expect(readFileSync(npmrc, 'utf8')).not.toMatch(/onnxruntime/)
  })

  it('reads engines ranges as npm does', () => {
    expect(satisfies('20.19.0', '>=20')).toBe(true)
    expect(satisfies('20.19.0', '>=22')).toBe(false)
    expect(satisfies('20.19.0', '^18.17.0 || >=20.5.0')).toBe(true)
    expect(satisfies('20.19.0', '^20.19.0 || ^22.12.0 || >=24')).toBe(true)
    expect(satisfies('20.19.0', '^22.12.0 || >=24')).toBe(false)
    expect(satisfies('20.19.0', '20.x')).toBe(true)
    expect(satisfies('20.19.0', '>= 14')).toBe(true)
    expect(() => satisfies('20.19.0', '20.19 - 22')).toThrow(/cannot read/)
  })
})
