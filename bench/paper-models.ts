/**
 * One training step (forward, loss, every gradient, SGD-momentum update) of each paper model at
 * batch 64, 3x32x32 inputs, 10 classes: ours (ONNX Runtime training graph + typed-array SGD)
 * against PyTorch 1.13 (torchvision's models, /usr/bin/python3) in the same run, interleaved:
 * each round times STEPS steps of ours, then STEPS of PyTorch's, per model.
 * `npx tsx bench/paper-models.ts [--rounds 3] [--steps 5] [--models squeezenet1_1,mobilenet_v3_small,vgg11]`
 * Prints per-round medians and the ratio ours / PyTorch (lower is better) with its range.
 */
import '../polyfill.js'
import { spawn, spawnSync } from 'node:child_process'
import { createInterface } from 'node:readline'
import { createRng } from '../ml/core/rng.js'
import { createOnnxGradientComputer } from '../ml/engine/onnx-gradient-computer.js'
import { createModel } from '../ml/models/zoo.js'
import { createOptimizer } from '../ml/optim/index.js'
import { bufferSpecs } from '../ml/params.js'

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : fallback
}
const ROUNDS = Number(arg('rounds', '3'))
const STEPS = Number(arg('steps', '5'))
const MODELS = arg('models', 'squeezenet1_1,mobilenet_v3_small,vgg11').split(',')
const BATCH = 64
const THREADS = 2

const TORCH = `
import sys, time, json, torch, torchvision
torch.set_num_threads(${THREADS})
models = {}
def model(name):
    if name not in models:
        torch.manual_seed(0)
        m = getattr(torchvision.models, name)(num_classes=10).train()
        models[name] = (m, torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9), torch.randn(${BATCH}, 3, 32, 32), torch.randint(0, 10, (${BATCH},)))
    return models[name]
def step(m, opt, x, y):
    opt.zero_grad()
    torch.nn.functional.cross_entropy(m(x), y).backward()
    opt.step()
print('ready', flush=True)
for line in sys.stdin:
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
  // OMP_WAIT_POLICY=PASSIVE: on a loaded machine OpenMP's spinning workers made PyTorch's steps
  // 5-15x slower than their quiet-machine times (STACK-NOTES), which would flatter us
  const py = spawn('/usr/bin/python3', ['-c', TORCH], { env: { ...process.env, OPENBLAS_NUM_THREADS: '1', OMP_NUM_THREADS: String(THREADS), OMP_WAIT_POLICY: 'PASSIVE' }, stdio: ['pipe', 'pipe', 'inherit'] })
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
  try {
    await nextLine()
    console.log(`batch ${BATCH}, 3x32x32, ${THREADS} threads, ${ROUNDS} rounds x ${STEPS} steps, interleaved; medians in ms`)
    for (const name of MODELS) {
      const model = createModel(name, [3, 32, 32])
      const params = model.initParameters(1)
      const optimizer = createOptimizer({ type: 'sgd', lr: 0.01, momentum: 0.9, nesterov: false, weightDecay: 0 }, params.length, bufferSpecs(model.layout))
      const computer = createOnnxGradientComputer(model, { intraOpThreads: THREADS })
      const rng = createRng(2)
      const batch = { size: BATCH, sampleShape: [3, 32, 32], inputs: new Float32Array(BATCH * 3072).map(() => rng.nextFloat() * 2 - 1), labels: Int32Array.from({ length: BATCH }, () => rng.nextInt(10)) }
      const ourStep = async (): Promise<void> => {
        const { gradient } = await computer.computeGradient(params, batch)
        optimizer.step(params, gradient, 0.01)
      }
      await ourStep()
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
  }
}

await main()
