/**
 * Runs stand-in Lambda functions from their deployment zips: each zip is extracted to its own
 * directory and served by warm child processes (lambda-runtime.mjs, one invocation at a time each,
 * up to `concurrency` per function), like Lambda's execution environments. Tests can make the
 * next invocations of a function fail (as a crashed or timed-out function would) and count them.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { unzipSync } from 'fflate'

export interface FunctionConfig {
  readonly name: string
  readonly handler: string
  readonly runtime: string
  readonly role: string
  readonly memoryMb: number
  readonly timeoutSeconds: number
  readonly environment: Record<string, string>
}

export interface InvokeOutcome {
  readonly ok: boolean
  /** the handler's result, or { errorType, errorMessage } */
  readonly payload: unknown
}

interface Container {
  readonly child: ChildProcess
  busy: boolean
}

interface HostedFunction {
  config: FunctionConfig
  dir: string
  containers: Container[]
  waiting: Array<() => void>
  failNext: number
  invocations: number
  codeSha: string
}

const RUNTIME = join(dirname(fileURLToPath(import.meta.url)), 'lambda-runtime.mjs')

export interface FunctionHost {
  deploy(config: FunctionConfig, zip: Uint8Array, codeSha: string): Promise<void>
  configure(name: string, patch: Partial<FunctionConfig>): void
  get(name: string): { config: FunctionConfig, codeSha: string, codeSize: number } | undefined
  invoke(name: string, event: unknown): Promise<InvokeOutcome>
  /** the next `count` invocations of `name` fail with errorType 'InjectedFailure' (Infinity: all) */
  failNext(name: string, count: number): void
  invocations(name: string): number
  stop(): Promise<void>
}

export async function createFunctionHost(options: { env: Record<string, string>, concurrency?: number }): Promise<FunctionHost> {
  const root = await mkdtemp(join(tmpdir(), 'p2pmld-lambda-'))
  const functions = new Map<string, HostedFunction & { codeSize: number }>()
  const limit = options.concurrency ?? 4
  let generation = 0

  const stopContainers = (fn: HostedFunction): void => {
    for (const c of fn.containers) c.child.kill()
    fn.containers = []
  }

  const startContainer = async (fn: HostedFunction): Promise<Container> => {
    const child = fork(RUNTIME, [fn.dir, fn.config.handler], {
      execArgv: [],
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      env: { PATH: process.env.PATH ?? '', ...options.env, ...fn.config.environment, AWS_LAMBDA_FUNCTION_NAME: fn.config.name }
    })
    let stderr = ''
    child.stderr?.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000) })
    await new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve())
      child.once('exit', (code) => reject(new Error(`function ${fn.config.name} failed to start (exit ${code}): ${stderr}`)))
    })
    const container = { child, busy: false }
    child.once('exit', () => { fn.containers = fn.containers.filter((c) => c !== container) })
    fn.containers.push(container)
    return container
  }

  const acquire = async (fn: HostedFunction): Promise<Container> => {
    for (;;) {
      const idle = fn.containers.find((c) => !c.busy)
      if (idle !== undefined) {
        idle.busy = true
        return idle
      }
      if (fn.containers.length < limit) {
        const fresh = await startContainer(fn)
        fresh.busy = true
        return fresh
      }
      await new Promise<void>((resolve) => fn.waiting.push(resolve))
    }
  }

  let nextId = 0
  const run = (container: Container, event: unknown, timeoutMs: number): Promise<InvokeOutcome> => new Promise((resolve) => {
    const id = nextId++
    const timer = setTimeout(() => {
      cleanup()
      container.child.kill()
      resolve({ ok: false, payload: { errorType: 'Sandbox.Timedout', errorMessage: `Task timed out after ${timeoutMs / 1000} seconds` } })
    }, timeoutMs)
    const onMessage = (message: { id: number, ok: boolean, result?: unknown, errorType?: string, errorMessage?: string }): void => {
      if (message.id !== id) return
      cleanup()
      resolve(message.ok ? { ok: true, payload: message.result } : { ok: false, payload: { errorType: message.errorType, errorMessage: message.errorMessage } })
    }
    const onExit = (): void => {
      cleanup()
      resolve({ ok: false, payload: { errorType: 'Runtime.ExitError', errorMessage: 'the runtime exited' } })
    }
    const cleanup = (): void => {
      clearTimeout(timer)
      container.child.off('message', onMessage)
      container.child.off('exit', onExit)
    }
    container.child.on('message', onMessage)
    container.child.once('exit', onExit)
    container.child.send({ id, event })
  })

  return {
    async deploy(config, zip, codeSha) {
      const dir = join(root, `${config.name}-${generation++}`)
      for (const [path, bytes] of Object.entries(unzipSync(zip))) {
        if (path.endsWith('/')) continue
        const target = join(dir, path)
        await mkdir(dirname(target), { recursive: true })
        await writeFile(target, bytes)
        if (path.endsWith('.node') || path.includes('.so')) await chmod(target, 0o755)
      }
      const existing = functions.get(config.name)
      if (existing !== undefined) {
        stopContainers(existing)
        Object.assign(existing, { config, dir, codeSha, codeSize: zip.length })
      } else {
        functions.set(config.name, { config, dir, containers: [], waiting: [], failNext: 0, invocations: 0, codeSha, codeSize: zip.length })
      }
    },
    configure(name, patch) {
      const fn = functions.get(name)
      if (fn === undefined) throw new Error(`no function ${name}`)
      fn.config = { ...fn.config, ...patch }
      stopContainers(fn)
    },
    get(name) {
      const fn = functions.get(name)
      return fn === undefined ? undefined : { config: fn.config, codeSha: fn.codeSha, codeSize: fn.codeSize }
    },
    async invoke(name, event) {
      const fn = functions.get(name)
      if (fn === undefined) throw new Error(`no function ${name}`)
      fn.invocations++
      if (fn.failNext > 0) {
        fn.failNext--
        return { ok: false, payload: { errorType: 'InjectedFailure', errorMessage: `stand-in: invocation ${fn.invocations} of ${name} made to fail` } }
      }
      let container: Container
      try {
        container = await acquire(fn)
      } catch (error) {
        return { ok: false, payload: { errorType: 'Runtime.ImportModuleError', errorMessage: (error as Error).message } }
      }
      try {
        return await run(container, event, fn.config.timeoutSeconds * 1000)
      } finally {
        container.busy = false
        fn.waiting.shift()?.()
      }
    },
    failNext(name, count) {
      const fn = functions.get(name)
      if (fn === undefined) throw new Error(`no function ${name}`)
      fn.failNext = count
    },
    invocations: (name) => functions.get(name)?.invocations ?? 0,
    async stop() {
      for (const fn of functions.values()) stopContainers(fn)
      await rm(root, { recursive: true, force: true })
    }
  }
}
