// One warm "container" of a stand-in Lambda function: imports handler.mjs from the extracted
// deployment package (argv[2]) and serves invocations sent over IPC, one at a time, as the
// Node.js Lambda runtime does. Plain JavaScript: it runs the packaged code with plain node.
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

const dir = process.argv[2]
const [file, exported] = (process.argv[3] ?? 'handler.handler').split('.')
const module = await import(pathToFileURL(join(dir, `${file}.mjs`)).href)
const handler = module[exported]
if (typeof handler !== 'function') throw new Error(`${file}.mjs exports no function '${exported}'`)

process.on('message', (message) => {
  Promise.resolve()
    .then(() => handler(message.event, { functionName: process.env.AWS_LAMBDA_FUNCTION_NAME, awsRequestId: String(message.id) }))
    .then(
      (result) => process.send({ id: message.id, ok: true, result }),
      (error) => process.send({ id: message.id, ok: false, errorType: error?.name ?? 'Error', errorMessage: error?.message ?? String(error) })
    )
})
process.send({ ready: true })
