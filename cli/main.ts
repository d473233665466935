#!/usr/bin/env -S GLIBC_TUNABLES=glibc.malloc.hugetlb=1:${GLIBC_TUNABLES} node --single-threaded-gc
// The launcher adds one glibc setting before the user's own, so a user's glibc.malloc.hugetlb
// wins (glibc takes the last; ignored where the C library is not glibc): transparent huge pages
// for malloc's large chunks. onnxruntime-node copies every graph
// output into a fresh ArrayBuffer after each run, even into preallocated outputs, so a step
// allocates the whole gradient anew, and glibc maps chunks above 32 MiB fresh each time: vgg11's
// 512 MB of gradients were page-faulted in 4 KiB at a time, 2.3 s of a step against 0.46 s of
// operators (batch 64, 32x32). With huge pages the step took 0.56 s. (env -S: GNU coreutils
// 8.30+, BSD/macOS env.)
// V8 collects garbage on the main thread only (--single-threaded-gc): those fresh output buffers
// (resnet18: 17 MB a step) start a full collection every two steps or so, and V8's concurrent
// marking and sweeping threads then compete with ONNX Runtime's two threads for the two cores,
// slowing a run that waits for its slowest thread. resnet18's gradient + update, 65 steps back to
// back at batch 64, six alternated pairs of processes, each in its favour: medians 70.9-95.4 ->
// 68.7-74.6 ms; lenet5 and squeezenet1_1 within noise.
import '../polyfill.js'
import { checkSubcommands, createProgram } from './program.js'

const program = createProgram({ json: process.argv.slice(2).includes('--json') })
checkSubcommands(program, process.argv.slice(2))
await program.parseAsync(process.argv)
