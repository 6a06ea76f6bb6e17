/**
 * `kelix-serve bench [flags]`: the benchmarks (bench/run.ts, whose header is
 * its --help), run in a child process through tsx as `npm run bench` runs
 * them. They are not compiled into dist/, so this works only from a source
 * checkout with the dev dependencies installed; elsewhere it says so.
 */
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { constants } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CommandError, type Command } from './command.js'

/** The checkout's root, from src/cli/ or dist/cli/ alike. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const RUN_SCRIPT = join(ROOT, 'bench', 'run.ts')
const NEEDS_CHECKOUT = 'bench runs only from a source checkout with its dev dependencies (git clone, then npm ci)'

export const bench: Command = async (argv, usage) => {
  if (!existsSync(RUN_SCRIPT)) throw new CommandError(`${NEEDS_CHECKOUT}: ${RUN_SCRIPT} is not there`)
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(`Usage: ${usage} [flags]\n\n${headerComment(readFileSync(RUN_SCRIPT, 'utf8'))}`)
    return 0
  }
  return runChild([`--import`, tsxLoader(), RUN_SCRIPT, ...argv])
}

function tsxLoader(): string {
  try {
    return import.meta.resolve('tsx/esm')
  } catch {
    throw new CommandError(`${NEEDS_CHECKOUT}: tsx is not installed`)
  }
}

/** The leading `/** ... *\/` comment, without its comment marks. */
function headerComment(source: string): string {
  const comment = /^\/\*\*\n([\s\S]*?)\n \*\//.exec(source)?.[1] ?? ''
  return comment.replace(/^ \* ?/gm, '')
}

/** Resolves with the child's exit code; a signal to this process is passed on, so the child can clean up. */
function runChild(args: string[]): Promise<number> {
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: 'inherit' })
  const forward = (signal: NodeJS.Signals) => child.kill(signal)
  process.on('SIGINT', forward).on('SIGTERM', forward)
  return new Promise((resolvePromise, reject) => {
    child.once('error', reject)
    child.once('exit', (code, signal) => {
      process.off('SIGINT', forward).off('SIGTERM', forward)
      resolvePromise(code ?? 128 + (signal === null ? 0 : constants.signals[signal]))
    })
  })
}
