/**
 * `kelix-serve <subcommand> [args]`, in vLLM's habits: `--help` lists the
 * subcommands, `<subcommand> --help` is that subcommand's, flags go after the
 * subcommand, and no subcommand at all prints the help and exits 0 (as `vllm`
 * alone does).
 */
import { readFileSync } from 'node:fs'
import { UsageError, unknownFlag, type Command } from './command.js'
import { closest } from './closest.js'
import { SUBCOMMANDS } from './subcommands.js'

const TOP_LEVEL_FLAGS = ['--help', '--version']

export function topLevelHelp(prog: string): string {
  const width = Math.max(...SUBCOMMANDS.map((s) => s.name.length))
  return [
    `Usage: ${prog} <subcommand> [args]`,
    '',
    'Subcommands:',
    ...SUBCOMMANDS.map((s) => `  ${s.name.padEnd(width)}  ${s.summary}`),
    '',
    'Flags:',
    '  -h, --help     this text',
    '  -v, --version  the version',
    '',
    `${prog} <subcommand> --help shows a subcommand's flags.`,
  ].join('\n')
}

/** `usage` is the program's name: `kelix-serve`. */
export const kelixServe: Command = async (argv, usage) => {
  const [first, ...rest] = argv
  if (first === undefined || first === '--help' || first === '-h') {
    console.log(topLevelHelp(usage))
    return 0
  }
  if (first === '--version' || first === '-v') {
    console.log(version())
    return 0
  }
  if (first.startsWith('-')) throw await topLevelFlag(first, usage)
  const subcommand = SUBCOMMANDS.find((s) => s.name === first)
  if (subcommand === undefined) throw unknownSubcommand(first, usage)
  const command = await subcommand.load()
  return command(rest, `${usage} ${subcommand.name}`)
}

function unknownSubcommand(name: string, prog: string): UsageError {
  const near = closest(
    name,
    SUBCOMMANDS.map((s) => s.name),
  )
  return new UsageError(
    `unknown subcommand ${name} ${near === undefined ? `(see ${prog} --help)` : `(did you mean ${near}?)`}`,
  )
}

/** A server flag before any subcommand is the likeliest slip: say where it goes. */
async function topLevelFlag(arg: string, prog: string): Promise<UsageError> {
  const flag = arg.split('=')[0]!
  const { SERVER_FLAGS } = await import('../server/config.js')
  if (SERVER_FLAGS.includes(flag)) return new UsageError(`${flag} is a flag of serve: ${prog} serve ${flag} ...`)
  return unknownFlag(flag, TOP_LEVEL_FLAGS)
}

function version(): string {
  const pkg = new URL('../../package.json', import.meta.url)
  return (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version
}
