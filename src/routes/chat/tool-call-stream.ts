/**
 * A constrained tool-call answer read as it streams. The grammar (tools.ts)
 * writes compact JSON with `name` before `arguments`:
 *
 *   {"name":"get_weather","arguments":{"city":"Paris"}}      (one call)
 *   [{"name":"a","arguments":{}},{"name":"b","arguments":{}}]  (parallel calls)
 *
 * so a call's name is known as soon as `,"arguments":` follows it, and every
 * character after that up to the call's closing brace is its arguments. Each
 * `push` returns what OpenAI streams for the new text: a call's header (index,
 * id, type, name, empty arguments) once, then its argument fragments.
 */
import { randomBytes } from 'node:crypto'

export type ToolCallDelta =
  | { index: number; id: string; type: 'function'; function: { name: string; arguments: string } }
  | { index: number; function: { arguments: string } }

const HEADER = /^\{"name":"((?:[^"\\]|\\.)*)","arguments":$/

export class ToolCallStream {
  /** Nesting depth of the text so far (objects and arrays), outside strings. */
  private depth = 0
  private inString = false
  private escaped = false
  /** The current call's text before its arguments, while the header is not complete. */
  private head = ''
  private call = -1
  private inArguments = false
  /** The calls so far, with their argument text. */
  readonly calls: Array<{ id: string; name: string; arguments: string }> = []

  constructor(private readonly parallel: boolean) {}

  /** The deltas `text` adds. */
  push(text: string): ToolCallDelta[] {
    const out: ToolCallDelta[] = []
    let fragment = ''
    const flush = () => {
      if (fragment !== '') out.push({ index: this.call, function: { arguments: fragment } })
      fragment = ''
    }
    const callDepth = this.parallel ? 2 : 1
    for (const ch of text) {
      const wasDepth = this.depth
      this.track(ch)
      if (!this.inArguments) {
        // A call object opens at the call depth; its text up to the arguments is its header.
        if (ch === '{' && wasDepth === callDepth - 1) this.head = ''
        if (this.depth >= callDepth) this.head += ch
        const match = HEADER.exec(this.head)
        if (match === null) continue
        this.call++
        const id = `call_${randomBytes(12).toString('hex')}`
        const name = JSON.parse(`"${match[1]}"`) as string
        this.calls.push({ id, name, arguments: '' })
        out.push({ index: this.call, id, type: 'function', function: { name, arguments: '' } })
        this.inArguments = true
        this.head = ''
        continue
      }
      // The call's closing brace ends its arguments.
      if (this.depth === callDepth - 1 && ch === '}') {
        flush()
        this.inArguments = false
        continue
      }
      fragment += ch
      ;(this.calls[this.call] as { arguments: string }).arguments += ch
    }
    flush()
    return out
  }

  private track(ch: string): void {
    if (this.inString) {
      if (this.escaped) this.escaped = false
      else if (ch === '\\') this.escaped = true
      else if (ch === '"') this.inString = false
      return
    }
    if (ch === '"') this.inString = true
    else if (ch === '{' || ch === '[') this.depth++
    else if (ch === '}' || ch === ']') this.depth--
  }
}
