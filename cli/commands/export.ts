/**
 * `p2pmld export`: the trained model as a forward ONNX file (parameters as initializers) that
 * onnxruntime or PyTorch's ONNX import runs for inference: from a running daemon (over its
 * control socket) or from a checkpoint file.
 */
import { join, resolve } from 'node:path'
import type { Command } from 'commander'
import { EXPORT_FORMATS } from '../../daemon/checkpoint/export-formats.js'
import { checkModelPath } from '../../daemon/checkpoint/model-path.js'
import { describeExportedInputs } from '../support/exported-inputs.js'
import { addClientOptions, withClient, WRITING_TIMEOUT_MS, type ClientOptions } from '../support/daemon-target.js'
import { formatBytes } from '../support/format.js'
import { action, printResult } from '../support/output.js'

interface ExportFlags extends ClientOptions {
  readonly out: string
  readonly format: string
  readonly checkpoint?: string
}

export function registerExportCommand(program: Command): void {
  addClientOptions(program.command('export').description('write the trained model as a forward ONNX file (from the running daemon, or --checkpoint FILE)'), WRITING_TIMEOUT_MS)
    .requiredOption('--out <file>', 'the ONNX file to write, e.g. model.onnx')
    .option('--format <format>', `output format: ${EXPORT_FORMATS.join(', ')}`, 'onnx')
    .option('--checkpoint <file>', 'export from this checkpoint file (or a data dir\'s checkpoint directory) instead of a running daemon')
    .action(action(async (flags: ExportFlags) => {
      if (!(EXPORT_FORMATS as readonly string[]).includes(flags.format)) {
        throw new Error(`--format must be one of ${EXPORT_FORMATS.join(', ')}, got '${flags.format}'`)
      }
      // the daemon may run in another directory: send an absolute path
      const out = resolve(flags.out)
      // a directory, or a file where a directory belongs, is named before the daemon is asked
      await checkModelPath(out, '--out')
      const result = flags.checkpoint !== undefined
        ? await (await import('../../daemon/checkpoint/index.js')).exportCheckpointModel(resolve(flags.checkpoint), out)
        : await withClient(flags, async (client) => await client.exportModel({ path: out, format: 'onnx' }), (dataDir) => `export the model of the job in its checkpoint with \`p2pmld export --checkpoint ${join(dataDir, 'checkpoint')}\``)
      printResult(flags, result, (r) => `model at step ${r.step} written to ${r.path} (${formatBytes(r.bytes)}, ONNX)\n${describeExportedInputs(r)}`)
    }))
}
