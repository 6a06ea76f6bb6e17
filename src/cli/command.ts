/**
 * What every command shares: its signature, the errors it ends with, and the
 * one place those errors become a line on stderr and an exit code (no stack
 * trace for a mistake the user can fix).
 */
import { closest } from './closest.js'

/**
 * A command takes its arguments and the words that invoke it (for its help's
 * Usage line, e.g. `kelix-serve convert`) and resolves with the exit code.
 */
export type Command = (argv: string[], usage: string) => Promise<number>

/** A failure the user can act on: printed as one line. Exit 1 unless said otherwise. */
export class CommandError extends Error {
  override readonly name: string = 'CommandError'
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message)
  }
}

/** A bad command line: exit 2, as argparse and node:util's parseArgs users expect. */
export class UsageError extends CommandError {
  override readonly name = 'UsageError'
  constructor(message: string) {
    super(message, 2)
  }
}

/** `unknown flag --max-num-seq (did you mean --max-num-seqs?)`. */
export function unknownFlag(flag: string, known: readonly string[]): UsageError {
  const near = closest(flag, known)
  return new UsageError(`unknown flag ${flag} ${near === undefined ? '(see --help)' : `(did you mean ${near}?)`}`)
}

/** Runs `command`; a CommandError becomes `prog: message` on stderr and its exit code. */
export async function runCommand(
  command: Command,
  argv: string[],
  invocation: { prog: string; usage: string },
): Promise<number> {
  try {
    return await command(argv, invocation.usage)
  } catch (err) {
    if (!(err instanceof CommandError)) throw err
    console.error(`${invocation.prog}: ${err.message}`)
    return err.exitCode
  }
}
