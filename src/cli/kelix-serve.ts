#!/usr/bin/env node
/**
 * The `kelix-serve` binary (package.json `bin`): serve, convert, build-tiny
 * and bench behind one command (dispatch.ts).
 */
import { runCommand } from './command.js'
import { kelixServe } from './dispatch.js'

process.exitCode = await runCommand(kelixServe, process.argv.slice(2), { prog: 'kelix-serve', usage: 'kelix-serve' })
