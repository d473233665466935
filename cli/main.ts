#!/usr/bin/env node
import '../polyfill.js'
import { createProgram } from './program.js'

await createProgram().parseAsync(process.argv)
