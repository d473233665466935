/**
 * One training step (forward, loss, every gradient, SGD-momentum update) of each paper model at
 * batch 64, 3x32x32 inputs, 10 classes: ours (ONNX Runtime training graph + the optimizer, with
 * the parameters and the computed gradient in the optimizer's memory, as the daemon keeps them;
 * a fresh 516 MB gradient array and chunked copies made vgg11's steps swing between 0.93 and 1.59 s)
 * against PyTorch 1.13 (torchvision's models, /usr/bin/python3) in the same run, interleaved:
 * each round times STEPS steps of ours, then STEPS of PyTorch's, per model, after three such rounds
 * that are not counted (warm-up). PyTorch's gradients are reset to None before each backward
 * (`zero_grad(set_to_none=True)`, PyTorch 2's default and train-end-to-end's loop): 1.13's plain
 * zero_grad() zero-fills them and backward then adds into them, a pass over the gradients our
 * side does not make (resnet18 on a 2-core Xeon: PyTorch's step 93 -> 90 ms, medians of 9 rounds).
 * `npx tsx bench/paper-models.ts [--rounds 3] [--steps 5] [--models squeezenet1_1,mobilenet_v3_small,vgg11,resnet18]`
 * Prints per-round medians and the ratio ours / PyTorch (lower is better) with its range.
 *
 * A name that is not a zoo model (resnet18 by default) is a user's ONNX model: PyTorch builds
 * torchvision's model, folds each BatchNorm into the Conv before it (what an eval-mode export does),
 * exports it as the README tells users to, and both sides train that same folded model: ours
 * loaded with loadOnnxModel from the exported file, PyTorch's the folded module itself.
 */
import './support/launcher-env.js'
import '../polyfill.js'
import { spawn, spawnSync } from 'node:child_process'
import { createInterface } from 'node:readline'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRng } from '../ml/core/rng.js'
import { createOnnxGradientComputer } from '../ml/engine/onnx-gradient-computer.js'
import type { ModelDefinition } from '../ml/models/model-definition.js'
import { createModel, zooModelNames } from '../ml/models/zoo.js'
import { loadOnnxModel } from '../ml/onnx/load-onnx-model.js'
import { createOptimizer } from '../ml/optim/index.js'
import { bufferSpecs } from '../ml/params.js'

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : fallback
}
const ROUNDS = Number(arg('rounds', '3'))
const STEPS = Number(arg('steps', '5'))
const MODELS = arg('models', 'squeezenet1_1,mobilenet_v3_small,vgg11,resnet18').split(',')
const BATCH = 64
/** rounds of STEPS steps each side runs before the timed ones */
const WARMUP_ROUNDS = 3
const THREADS = 2

const TORCH = `
import importlib.util, sys, time, json, torch, torchvision
torch.set_num_threads(${THREADS})
models = {}
# the fixtures' fold (test/fixtures/make-fixtures.py): the same model a user's eval-mode export gives
_spec = importlib.util.spec_from_file_location('make_fixtures', sys.argv[1])
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)
fold_batchnorm = _fixtures.fuse_batchnorm
def keep(name, m):
    models[name] = (m, torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9), torch.randn(${BATCH}, 3, 32, 32), torch.randint(0, 10, (${BATCH},)))
def model(name):
    if name not in models:
        torch.manual_seed(0)
        keep(name, getattr(torchvision.models, name)(num_classes=10).train())
    return models[name]
def export(name, path):
    torch.manual_seed(0)
    m = fold_batchnorm(getattr(torchvision.models, name)(num_classes=10).eval())
    torch.onnx.export(m, torch.randn(1, 3, 32, 32), path, opset_version=13, input_names=['input'], output_names=['logits'],
                      dynamic_axes={'input': {0: 'batch'}, 'logits': {0: 'batch'}})
    keep(name, m.train())
def step(m, opt, x, y):
    opt.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(m(x), y).backward()
    opt.step()
print('ready', flush=True)
for line in sys.stdin:
    if line.startswith('export '):
        _, name, path = line.split()
        export(name, path)
        print('exported', flush=True)
        continue
    name, steps = line.split()
    m, opt, x, y = model(name)
    step(m, opt, x, y)
    times = []
    for _ in range(int(steps)):
        t = time.perf_counter(); step(m, opt, x, y); times.append((time.perf_counter() - t) * 1000)
    print(json.dumps(times), flush=True)
`

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

async function main(): Promise<void> {
  if (spawnSync('/usr/bin/python3', ['-c', 'import torchvision'], { encoding: 'utf8' }).status !== 0) {
    console.log('PyTorch/torchvision are not installed for /usr/bin/python3 (apt-get install python3-torchvision): nothing to compare with')
    return
  }
  // OpenMP's default (spinning) wait policy, as bench/support/torch-reference.ts: PASSIVE made
  // PyTorch's lenet5 step 2.8 -> 5.0 ms on a quiet machine here, which flattered us; under load
  // spinning slows it instead, so run the benches on a quiet machine
  const fixtures = fileURLToPath(new URL('../test/fixtures/make-fixtures.py', import.meta.url))
  const py = spawn('/usr/bin/python3', ['-c', TORCH, fixtures], { env: { ...process.env, OPENBLAS_NUM_THREADS: '1', OMP_NUM_THREADS: String(THREADS) }, stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = createInterface({ input: py.stdout })[Symbol.asyncIterator]()
  const nextLine = async (): Promise<string> => {
    const r = await lines.next()
    if (r.done === true) throw new Error('the PyTorch process ended early')
    return r.value
  }
  const torchSteps = async (name: string): Promise<number[]> => {
    py.stdin.write(`${name} ${STEPS}\n`)
    return JSON.parse(await nextLine()) as number[]
  }
  const exportDir = await mkdtemp(join(tmpdir(), 'p2pmld-bench-'))
  /** a zoo model, or torchvision's exported as a user would (BatchNorm folded): see the header */
  const loadModel = async (name: string): Promise<ModelDefinition> => {
    if (zooModelNames().includes(name)) return createModel(name, [3, 32, 32])
    const path = join(exportDir, `${name}.onnx`)
    py.stdin.write(`export ${name} ${path}\n`)
    if (await nextLine() !== 'exported') throw new Error(`PyTorch did not export ${name}`)
    console.log(`${name}: torchvision's model exported to ONNX with BatchNorm folded, trained that way on both sides`)
    return await loadOnnxModel(path)
  }
  try {
    await nextLine()
    console.log(`batch ${BATCH}, 3x32x32, ${THREADS} threads, ${ROUNDS} rounds x ${STEPS} steps after ${WARMUP_ROUNDS} warm-up rounds, interleaved; medians in ms`)
    for (const name of MODELS) {
      const model = await loadModel(name)
      const optimizer = createOptimizer({ type: 'sgd', lr: 0.01, momentum: 0.9, nesterov: false, weightDecay: 0 }, model.layout.totalSize, bufferSpecs(model.layout))
      // as the daemon keeps them: parameters and the computed gradient in the optimizer's memory
      const params = optimizer.hostParameters(model.initParameters(1))
      const into = optimizer.localGradientBuffer()
      const computer = createOnnxGradientComputer(model, { intraOpThreads: THREADS, reuseGradientBuffer: true })
      const rng = createRng(2)
      const batch = { size: BATCH, sampleShape: [3, 32, 32], inputs: new Float32Array(BATCH * 3072).map(() => rng.nextFloat() * 2 - 1), labels: Int32Array.from({ length: BATCH }, () => rng.nextInt(10)) }
      const ourStep = async (): Promise<void> => {
        const { gradient } = await computer.computeGradient(params, batch, undefined, into)
        optimizer.step(params, gradient, 0.01)
      }
      // warm-up rounds on each side, not counted: PyTorch's first 10-15 steps of a model ran slow
      // (resnet18 first: rounds of 139 and 103 ms, then 80), which flattered whichever model came first
      for (let round = 0; round < WARMUP_ROUNDS; round++) {
        for (let i = 0; i < STEPS; i++) await ourStep()
        await torchSteps(name)
      }
      const ratios: number[] = []
      for (let round = 0; round < ROUNDS; round++) {
        const ours: number[] = []
        for (let i = 0; i < STEPS; i++) {
          const t = performance.now()
          await ourStep()
          ours.push(performance.now() - t)
        }
        const torch = await torchSteps(name)
        ratios.push(median(ours) / median(torch))
        console.log(`${name} round ${round + 1}: ours ${median(ours).toFixed(1)} ms, PyTorch ${median(torch).toFixed(1)} ms, ratio ${ratios[round].toFixed(2)}`)
      }
      console.log(`${name}: ours / PyTorch = ${median(ratios).toFixed(2)} (range ${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})`)
      await computer.close()
    }
  } finally {
    py.stdin.end()
    py.kill()
    await rm(exportDir, { recursive: true, force: true })
  }
}

await main()
