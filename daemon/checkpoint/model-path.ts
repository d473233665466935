/**
 * Where a model export may go, checked before the work that ends in writing it (a training run,
 * a daemon's export): light (no ONNX Runtime), for the CLI to call before anything else.
 */
import { randomBytes } from 'node:crypto'
import { constants } from 'node:fs'
import { access, open, rm, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'

export class ModelExportError extends Error {
  override name = 'ModelExportError'
}

/**
 * Whether an ONNX file can be written at `path` (an absolute path), before any work that ends in
 * writing it: not a directory, and the nearest existing ancestor a directory this process may
 * create files in (missing ones between are created). Where the file's own directory exists, a
 * file is created in it and removed (its permission bits do not say it all: root passes them on
 * /sys, a read-only or full file system refuses the write; `probe: false` for a caller that writes
 * the file next, whose own write says the same). `what` names the path in the
 * message (a flag). Throws a ModelExportError naming the problem and the fix.
 */
export async function checkModelPath(path: string, what: string, options: { readonly probe?: boolean } = {}): Promise<void> {
  const found = await stat(path).catch(() => undefined)
  if (found?.isDirectory() === true) throw new ModelExportError(`${what} ${path} is a directory: give the ONNX file to write, e.g. ${join(path, 'model.onnx')}`)
  let dir = dirname(path)
  for (;;) {
    const ancestor = await stat(dir).catch(() => undefined)
    if (ancestor !== undefined) {
      if (!ancestor.isDirectory()) throw new ModelExportError(`${what} ${path} cannot be written: ${dir} is a file, not a directory`)
      await access(dir, constants.W_OK | constants.X_OK).catch(() => { throw new ModelExportError(`${what} ${path} cannot be written: this user may not create files in ${dir}`) })
      if (dir === dirname(path) && options.probe !== false) await probeWrite(dir, path, what)
      return
    }
    if (dirname(dir) === dir) return
    dir = dirname(dir)
  }
}


/** Creates an empty file in `dir` and removes it; a refusal becomes a ModelExportError naming `path`. */
async function probeWrite(dir: string, path: string, what: string): Promise<void> {
  const probe = join(dir, `.p2pmld-write-check-${process.pid}-${randomBytes(4).toString('hex')}`)
  try {
    await (await open(probe, 'wx', 0o600)).close()
  } catch (error) {
    throw new ModelExportError(`${what} ${path} cannot be written: creating a file in ${dir} failed (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); give a path in a writable directory`)
  }
  await rm(probe, { force: true })
}
