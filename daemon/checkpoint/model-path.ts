/**
 * Where a model export may go, checked before the work that ends in writing it (a training run,
 * a daemon's export): light (no ONNX Runtime), for the CLI to call before anything else.
 */
import { constants } from 'node:fs'
import { access, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'

export class ModelExportError extends Error {
  override name = 'ModelExportError'
}

/**
 * Whether an ONNX file can be written at `path` (an absolute path), before any work that ends in
 * writing it: not a directory, and the nearest existing ancestor a directory this process may
 * create files in (missing ones between are created). `what` names the path in the message (a
 * flag). Throws a ModelExportError naming the problem and the fix.
 */
export async function checkModelPath(path: string, what: string): Promise<void> {
  const found = await stat(path).catch(() => undefined)
  if (found?.isDirectory() === true) throw new ModelExportError(`${what} ${path} is a directory: give the ONNX file to write, e.g. ${join(path, 'model.onnx')}`)
  let dir = dirname(path)
  for (;;) {
    const ancestor = await stat(dir).catch(() => undefined)
    if (ancestor !== undefined) {
      if (!ancestor.isDirectory()) throw new ModelExportError(`${what} ${path} cannot be written: ${dir} is a file, not a directory`)
      await access(dir, constants.W_OK | constants.X_OK).catch(() => { throw new ModelExportError(`${what} ${path} cannot be written: this user may not create files in ${dir}`) })
      return
    }
    if (dirname(dir) === dir) return
    dir = dirname(dir)
  }
}

