/** `p2pmld models`: the model zoo with parameter counts (no daemon needed). */
import type { Command } from 'commander'
import { listZooModels } from '../../daemon/training/model-catalog.js'
import { formatTable } from '../support/format.js'
import { action } from '../support/output.js'

export function registerModelsCommand(program: Command): void {
  program
    .command('models')
    .description('list the model zoo with parameter counts; the paper\'s models take their input shape from the dataset (1x28x28 MNIST, 3x32x32 CIFAR-10)')
    .option('--json', 'print the list as JSON')
    .action(action(async (flags: { json?: boolean }) => {
      const models = listZooModels()
      if (flags.json === true) {
        process.stdout.write(JSON.stringify(models, null, 2) + '\n')
        return
      }
      const rows = models.flatMap((m) => m.inputs.map((i) => [
        m.name,
        i.sampleShape.join('x'),
        i.parameters.toLocaleString('en-US'),
        i.buffers === 0 ? '-' : i.buffers.toLocaleString('en-US')
      ]))
      process.stdout.write(formatTable(['model', 'input', 'parameters', 'running stats'], rows) + '\n')
      process.stdout.write('any other model: pass the path of a forward .onnx file (torch.onnx.export, dynamic batch axis) as --model\n')
    }))
}
