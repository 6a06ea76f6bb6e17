/**
 * Tries a JSON schema on a throwaway XGrammar instance before the engine's
 * own instance compiles it. XGrammar aborts on a schema it cannot convert
 * (an unknown type, a `$ref` it cannot resolve, …) and an aborted instance
 * never answers again: here that costs only the probe, which is reloaded on
 * the next schema, and the request gets XGrammar's reason as a 400.
 *
 * The reason is only printed (to the instance's `printErr`, which Emscripten
 * binds to `console.error` when the instance starts): the probe starts with
 * `console.error` routed to its log for the moment the binding is made.
 */
import { loadXGrammar, type XGrammar } from './xgrammar.js'
import { KelixError } from '../../errors/kelix-error.js'

/** Lines XGrammar's C++ logging and Emscripten's abort print. */
const XGRAMMAR_LINE = /^\[(FATAL|ERROR|WARNING)\]|^Aborted\(/

interface Probe {
  x: XGrammar
  log: string[]
}

export class SchemaProbe {
  private probe: Promise<Probe> | undefined

  /** Resolves when XGrammar converts the schema; RESPONSE_FORMAT_INVALID with its reason otherwise. */
  async check(schema: string, strict: boolean): Promise<void> {
    this.probe ??= startProbe()
    const probe = await this.probe
    probe.log.length = 0
    try {
      ;(await probe.x.Grammar.fromJSONSchema(schema, false, -1, [',', ':'], strict)).dispose()
    } catch (err) {
      this.probe = undefined
      throw new KelixError(
        'invalid_value',
        `the JSON schema cannot be used for constrained decoding: ${reasonOf(probe.log, err)}`,
        { param: 'response_format' },
      )
    }
  }
}

async function startProbe(): Promise<Probe> {
  const log: string[] = []
  const original = console.error
  console.error = (...args: unknown[]) => {
    const line = args.map(String).join(' ')
    if (XGRAMMAR_LINE.test(line)) log.push(line)
    else original(...args)
  }
  try {
    const x = loadXGrammar()
    // The first call starts the instance, binding its printErr to the console.error above.
    ;(await x.Grammar.fromEBNF('root ::= "a"')).dispose()
    return { x, log }
  } finally {
    console.error = original
  }
}

/** XGrammar's own words: `[FATAL] …/json_schema_converter.cc:902: Unsupported type "x"` → `Unsupported type "x"`. */
function reasonOf(log: readonly string[], err: unknown): string {
  const logged = log.find((line) => /^\[(FATAL|ERROR)\]/.test(line))
  if (logged !== undefined) return logged.replace(/^\[\w+\]\s*(\S+:\d+:\s*)?/, '').trim()
  const text = err instanceof Error ? err.message : String(err)
  return text.split('\n')[0]?.trim() || 'the grammar engine refused it'
}
