/** profilePrefix: ONNX Runtime's profiler on; close() writes its trace, one event per node run. */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { createRng } from '../../ml/core/rng.js'
import { createOnnxGradientComputer } from '../../ml/engine/onnx-gradient-computer.js'
import { createModel } from '../../ml/models/zoo.js'

describe('onnx gradient computer with the profiler on', () => {
  it('writes a trace at close() with the training graph\'s operators', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'p2pmld-profile-test-'))
    try {
      const model = createModel('lenet5')
      const rng = createRng(5)
      const batch = { size: 4, sampleShape: model.sampleShape, inputs: Float32Array.from({ length: 4 * 28 * 28 }, () => rng.nextFloat()), labels: Int32Array.from({ length: 4 }, () => rng.nextInt(10)) }
      const profiled = createOnnxGradientComputer(model, { intraOpThreads: 1, profilePrefix: join(dir, 'ort') })
      for (let i = 0; i < 2; i++) await profiled.computeGradient(model.initParameters(1), batch)
      await profiled.close()
      const files = readdirSync(dir)
      expect(files).toHaveLength(1)
      const events = JSON.parse(readFileSync(join(dir, files[0]), 'utf8')) as Array<{ cat?: string, args?: { op_name?: string } }>
      const ops = new Set(events.filter((e) => e.cat === 'Node').map((e) => e.args?.op_name))
      for (const op of ['Conv', 'MaxPool', 'Gemm']) expect([...ops].some((o) => o?.includes(op)), `${op} in ${[...ops].join(', ')}`).toBe(true)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
