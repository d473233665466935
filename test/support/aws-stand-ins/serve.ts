/**
 * The AWS stand-ins on their own, to try offload without AWS: `npx tsx
 * test/support/aws-stand-ins/serve.ts [bucket]` starts them (S3 with `bucket`, default
 * p2pmld-test; Lambda and Step Functions on one local endpoint), prints the environment to export
 * in the shell that runs `p2pmld functions deploy` and `p2pmld start --offload ...`, and runs until
 * Ctrl-C.
 */
import '../../../polyfill.js'
import { startAwsStandIns } from './index.js'

const standIns = await startAwsStandIns({ bucket: process.argv[2] })
process.stdout.write(`AWS stand-ins running (bucket ${standIns.bucket}); in another shell:\n`)
for (const [name, value] of Object.entries(standIns.env)) process.stdout.write(`export ${name}=${value}\n`)
process.stdout.write('Ctrl-C stops them.\n')
const stop = (): void => { void standIns.stop().finally(() => process.exit(0)) }
process.once('SIGINT', stop)
process.once('SIGTERM', stop)
