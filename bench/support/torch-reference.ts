/**
 * PyTorch as the reference beside our rows: one long-lived /usr/bin/python3 process that
 * builds cases (a zoo model with its optimizer) on request and times them on request, so a
 * bench can interleave its own timings with PyTorch's (A, B, A, B) in one run instead of timing
 * PyTorch once at the end. Bench-only: torch is never a runtime or test dependency.
 *
 * Set-up per STACK-NOTES: OpenBLAS as the system BLAS (`apt-get install -y libopenblas0-pthread`),
 * OPENBLAS_NUM_THREADS=1 and torch.set_num_threads(threads).
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

/** As in config/job-config.ts: the optimizer both sides run. */
export type ReferenceOptimizer =
  | { readonly type: 'sgd', readonly lr: number, readonly momentum: number, readonly nesterov: boolean, readonly weightDecay: number }
  | { readonly type: 'adam', readonly lr: number, readonly beta1: number, readonly beta2: number, readonly eps: number, readonly weightDecay: number }

/** The paper's models (torchvision's, 10 classes, 3x32x32 samples); resnet18 with each BatchNorm folded into its conv. */
export const PAPER_MODELS = ['squeezenet1_1', 'mobilenet_v3_small', 'vgg11', 'resnet18'] as const
export type PaperModel = typeof PAPER_MODELS[number]

export interface TorchCase {
  /**
   * 'step': zero_grad, forward, cross-entropy, backward, opt.step() on one fixed batch;
   * 'optimizer': opt.step() alone on fixed gradients; 'train': a step on the next batch of a
   * shuffled in-memory data set of `samples` samples (x[perm[i:i+b]], PyTorch's fastest training
   * loop: no DataLoader), reshuffled each epoch. Samples are 1x28x28 (MNIST's shape) for mlp,
   * mlp-large and lenet5, 3x32x32 (CIFAR-10's) for the paper models
   */
  readonly what: 'step' | 'optimizer' | 'train'
  readonly model: 'mlp' | 'mlp-large' | 'lenet5' | PaperModel
  readonly batch: number
  readonly optimizer: ReferenceOptimizer
  /** data set size for 'train' (default 8192) */
  readonly samples?: number
  /**
   * resnet18 only: where to write the folded model as ONNX (opset 13, eval mode, dynamic batch),
   * as the README tells users to export it, so our side trains the very network PyTorch times
   */
  readonly exportTo?: string
}

export interface TorchReference {
  /** e.g. "PyTorch 1.13.1, BLAS /usr/lib/.../openblas-pthread/libblas.so.3" */
  readonly description: string
  /** builds a case; returns its id and its parameter count */
  prepare(c: TorchCase): Promise<{ id: number, params: number }>
  /** runs `warmup` untimed then `steps` timed calls of a case; per-call milliseconds */
  time(id: number, steps: number, warmup: number): Promise<number[]>
  close(): Promise<void>
}

const SCRIPT = String.raw`
import json, sys, time
import torch, torch.nn as nn, torch.nn.functional as F
torch.set_num_threads(int(sys.argv[1]))
torch.manual_seed(0)
def mlp(h):
    layers, w = [nn.Flatten()], 784
    for x in h: layers += [nn.Linear(w, x), nn.ReLU()]; w = x
    return nn.Sequential(*layers, nn.Linear(w, 10))
def lenet5():
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
models = {'mlp': lambda: mlp([128]), 'lenet5': lenet5, 'mlp-large': lambda: mlp([1024, 1024])}
PAPER = ('squeezenet1_1', 'mobilenet_v3_small', 'vgg11', 'resnet18')
def paper_model(name, export_to):
    import importlib.util, torchvision
    if name != 'resnet18':
        return getattr(torchvision.models, name)(num_classes=10)
    # the fixtures' fold (test/fixtures/make-fixtures.py): the model a user's eval-mode export gives
    spec = importlib.util.spec_from_file_location('make_fixtures', sys.argv[2])
    fixtures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixtures)
    m = fixtures.fuse_batchnorm(torchvision.models.resnet18(num_classes=10).eval())
    torch.onnx.export(m, torch.randn(1, 3, 32, 32), export_to, opset_version=13, input_names=['input'], output_names=['logits'],
                      dynamic_axes={'input': {0: 'batch'}, 'logits': {0: 'batch'}})
    return m
def optimizer(params, o):
    if o['type'] == 'sgd':
        return torch.optim.SGD(params, lr=o['lr'], momentum=o['momentum'], nesterov=o['nesterov'], weight_decay=o['weightDecay'])
    return torch.optim.Adam(params, lr=o['lr'], betas=(o['beta1'], o['beta2']), eps=o['eps'], weight_decay=o['weightDecay'])
cases = {}
for line in sys.stdin:
    req = json.loads(line)
    if req['op'] == 'prepare':
        c = req['case']
        m = paper_model(c['model'], c.get('exportTo')).train() if c['model'] in PAPER else models[c['model']]()
        shape = (3, 32, 32) if c['model'] in PAPER else (1, 28, 28)
        opt = optimizer(m.parameters(), c['optimizer'])
        x, y = torch.rand(c['batch'], *shape), torch.randint(0, 10, (c['batch'],))
        if c['what'] == 'optimizer':
            for p in m.parameters(): p.grad = torch.randn_like(p)
            fn = opt.step
        elif c['what'] == 'train':
            n, b = c.get('samples', 8192), c['batch']
            X, Y = torch.rand(n, *shape), torch.randint(0, 10, (n,))
            at = {'perm': torch.randperm(n), 'i': 0}
            def fn(m=m, opt=opt, X=X, Y=Y, at=at, n=n, b=b):
                if at['i'] + b > n: at['perm'], at['i'] = torch.randperm(n), 0
                idx = at['perm'][at['i']:at['i'] + b]
                at['i'] += b
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(m(X[idx]), Y[idx]).backward()
                opt.step()
        else:
            def fn(m=m, opt=opt, x=x, y=y):
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(m(x), y).backward()
                opt.step()
        cases[len(cases)] = fn
        out = {'id': len(cases) - 1, 'params': sum(p.numel() for p in m.parameters())}
    else:
        fn = cases[req['id']]
        for _ in range(req['warmup']): fn()
        ts = []
        for _ in range(req['steps']):
            t0 = time.perf_counter(); fn(); ts.append((time.perf_counter() - t0) * 1000)
        out = {'ms': ts}
    print(json.dumps(out), flush=True)
`

const PYTHON = '/usr/bin/python3'
/** the test fixtures' generator, whose fuse_batchnorm folds resnet18 as an eval-mode export does */
const FIXTURES = fileURLToPath(new URL('../../test/fixtures/make-fixtures.py', import.meta.url))

/** Which BLAS torch's Linear layers get, from Debian's alternatives. */
function activeBlas(): string {
  const query = spawnSync('update-alternatives', ['--query', 'libblas.so.3-x86_64-linux-gnu'], { encoding: 'utf8' })
  return /^Value: (.*)$/m.exec(query.stdout ?? '')?.[1] ?? 'unknown (update-alternatives has none)'
}

/**
 * Starts the reference, or returns why it cannot (torch missing for /usr/bin/python3): the
 * caller prints the reason and carries on without the PyTorch column.
 */
export function startTorchReference(threads: number): TorchReference | string {
  const probe = spawnSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' })
  if (probe.status !== 0) return `PyTorch is not installed for ${PYTHON} (apt-get install -y python3-torch): no PyTorch comparison in this run`
  const blas = activeBlas()
  const child: ChildProcessWithoutNullStreams = spawn(PYTHON, ['-c', SCRIPT, String(threads), FIXTURES], {
    env: { ...process.env, OPENBLAS_NUM_THREADS: '1', OMP_NUM_THREADS: String(threads) }
  })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-2000) })
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
  let closed = false
  const request = async (req: object): Promise<unknown> => {
    child.stdin.write(JSON.stringify(req) + '\n')
    const next = await lines.next()
    if (next.done === true) throw new Error(`the PyTorch reference exited: ${stderr.trim()}`)
    return JSON.parse(next.value) as unknown
  }
  const note = blas.includes('/blas/') ? ' (the slow reference BLAS: apt-get install -y libopenblas0-pthread for the fair reference)' : ''
  return {
    description: `PyTorch ${probe.stdout.trim()}, ${threads} threads, OPENBLAS_NUM_THREADS=1, BLAS ${blas}${note}`,
    prepare: async (c) => await request({ op: 'prepare', case: c }) as { id: number, params: number },
    time: async (id, steps, warmup) => ((await request({ op: 'time', id, steps, warmup })) as { ms: number[] }).ms,
    async close() {
      if (closed) return
      closed = true
      child.stdin.end()
      await new Promise<void>((resolve) => {
        if (child.exitCode !== null) resolve()
        else child.once('exit', () => resolve())
      })
    }
  }
}
