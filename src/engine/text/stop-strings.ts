/**
 * Finds stop strings in streamed text. Each stop string has a
 * Knuth–Morris–Pratt matcher whose state (how much of the stop string the
 * text currently ends with) carries across deltas, so a stop string split
 * over several deltas is found and each push costs only its own characters.
 *
 * Text that could still be the start of a stop string is held back; the stop
 * string and everything after it are never emitted. When several stop strings
 * could apply, the one that is complete first in the text wins, so the result
 * does not depend on how the text was cut into deltas.
 */

export interface StopResult {
  /** Text safe to emit now. */
  text: string
  /** True once a stop string has been found; `text` then ends just before it. */
  stopped: boolean
}

interface Matcher {
  stop: string
  /** failure[k]: length of the longest proper border of stop[0..k]. */
  failure: Uint32Array
  /** How many characters of `stop` the text seen so far ends with. */
  state: number
}

export class StopStringMatcher {
  readonly #matchers: Matcher[]
  /** Text held back: the longest tail that may begin a stop string. */
  #held = ''
  #stopped = false

  /** @param stops the stop strings; empty strings are ignored. */
  constructor(stops: readonly string[]) {
    this.#matchers = stops.filter((s) => s.length > 0).map((stop) => ({ stop, failure: failureTable(stop), state: 0 }))
  }

  /** Adds streamed text; returns what may be emitted and whether a stop string was reached. */
  push(delta: string): StopResult {
    if (this.#stopped) return { text: '', stopped: true }
    const text = this.#held + delta
    for (let i = this.#held.length; i < text.length; i++) {
      const unit = text[i] as string
      let cut = -1
      for (const m of this.#matchers) {
        m.state = advance(m, unit)
        // Of the stop strings complete at this character, the longest starts first.
        if (m.state === m.stop.length) cut = cut === -1 ? i + 1 - m.stop.length : Math.min(cut, i + 1 - m.stop.length)
      }
      if (cut !== -1) {
        this.#stopped = true
        this.#held = ''
        return { text: text.slice(0, cut), stopped: true }
      }
    }
    const keep = Math.max(0, ...this.#matchers.map((m) => m.state))
    this.#held = text.slice(text.length - keep)
    return { text: text.slice(0, text.length - keep), stopped: false }
  }

  /** At a normal end of generation: the text still held back. Empty after a stop. */
  flush(): string {
    const held = this.#held
    this.#held = ''
    return held
  }
}

function failureTable(stop: string): Uint32Array {
  const failure = new Uint32Array(stop.length)
  let k = 0
  for (let i = 1; i < stop.length; i++) {
    while (k > 0 && stop[i] !== stop[k]) k = failure[k - 1] ?? 0
    if (stop[i] === stop[k]) k++
    failure[i] = k
  }
  return failure
}

/** The matcher's state after one more character; a complete match ends the stream, so it is never continued. */
function advance(m: Matcher, unit: string): number {
  let k = m.state
  while (k > 0 && m.stop[k] !== unit) k = m.failure[k - 1] ?? 0
  return m.stop[k] === unit ? k + 1 : 0
}
