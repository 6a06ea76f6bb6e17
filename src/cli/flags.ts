/**
 * node:util's parseArgs, with an unknown flag reported by name and the closest
 * known flag, and every other parse failure as a one-line UsageError.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { UsageError, unknownFlag } from './command.js'

type Options = NonNullable<ParseArgsConfig['options']>

export function parseFlags<O extends Options>(args: string[], options: O) {
  // A lenient pass first, only to find the flags `options` does not declare.
  const { tokens } = parseArgs({ args, options, strict: false, allowPositionals: true, tokens: true })
  const known = Object.keys(options).map((name) => `--${name}`)
  for (const token of tokens) {
    if (token.kind === 'option' && !Object.hasOwn(options, token.name)) throw unknownFlag(token.rawName, known)
  }
  try {
    return parseArgs({ args, options, strict: true }).values
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}
