// Child process for the checkpoint crash test: writes the temp file of a checkpoint, says so,
// then waits to be killed before it can rename it into place.
import { prepareCheckpoint } from '../../daemon/checkpoint/index.js'

const [dir, countText] = process.argv.slice(2)
const params = new Float32Array(Number(countText)).fill(2.5)
const prepared = await prepareCheckpoint(dir, { jobConfig: { id: 'crash' }, step: 999, epoch: 9, cursor: 0, meta: {}, params, optimizerState: new Float32Array(0) })
process.stdout.write(`prepared ${prepared.tempPath}\n`)
setInterval(() => {}, 1000)
