/**
 * Compiled grammars for `response_format`, one vocabulary per model and one
 * compiled grammar per distinct format (least recently used dropped past
 * `capacity`), so a format that repeats costs one compile.
 *
 * The vocabulary is the text part of the unified vocabulary: each text or
 * added token's bytes written in the byte-level alphabet (XGrammar's
 * `byte_level` decodes them back); special tokens and ids without a token
 * are empty strings, which XGrammar never allows; <|im_end|> is the stop
 * token, allowed once the JSON is complete.
 *
 * JSON is written compactly, as OpenAI's structured outputs write it: one
 * line, no whitespace between elements, separators "," and ":". Compact JSON
 * never holds a raw control character (bytes below 0x20), so tokens with one
 * are left out of the vocabulary too: XGrammar's string rule would let them
 * into strings, and JSON.parse refuses those. So are tokens with a byte that
 * valid UTF-8 never holds (0xC0, 0xC1, 0xF5–0xFF): XGrammar reads F7 A1 B0 82
 * as one character of a string, a client decodes it as four U+FFFD, and the
 * string is then longer than the schema's maxLength.
 *
 * A schema using a feature XGrammar would not enforce is refused
 * (schema-features.ts); each new schema is then tried on a throwaway instance
 * (schema-probe.ts): one XGrammar cannot convert aborts the instance it meets.
 */
import type { KelixModel } from '../model.js'
import { byteLevelString } from '../text/byte-level.js'
import type { TextTokenizer } from '../text/tokenizer.js'
import type { ResponseFormat } from '../types.js'
import { TEXT_PART, vocabPartRange } from '../vocab-parts.js'
import { TokenConstraint } from './token-constraint.js'
import { unenforcedFeature } from './schema-features.js'
import { SchemaProbe } from './schema-probe.js'
import { loadXGrammar, type XCompiledGrammar, type XGrammar, type XGrammarCompiler } from './xgrammar.js'
import { KelixError } from '../../errors/kelix-error.js'

const DEFAULT_CAPACITY = 64

export class ResponseGrammars {
  private readonly x: XGrammar = loadXGrammar()
  private readonly probe = new SchemaProbe()
  private compiler: Promise<XGrammarCompiler> | undefined
  /** Compiled grammars by canonical format, oldest use first. */
  private readonly compiled = new Map<string, Promise<XCompiledGrammar>>()

  constructor(
    private readonly model: KelixModel,
    private readonly tokenizer: TextTokenizer,
    private readonly capacity = DEFAULT_CAPACITY,
  ) {}

  /**
   * A fresh grammar state for one answer in `format`. A schema the grammar
   * engine cannot compile is RESPONSE_FORMAT_INVALID with its reason.
   */
  async constraint(format: ResponseFormat): Promise<TokenConstraint> {
    const grammar = await this.grammar(format)
    return new TokenConstraint(await this.x.GrammarMatcher.createGrammarMatcher(grammar))
  }

  private grammar(format: ResponseFormat): Promise<XCompiledGrammar> {
    const key = JSON.stringify(format)
    let grammar = this.compiled.get(key)
    if (grammar !== undefined) {
      this.compiled.delete(key)
      this.compiled.set(key, grammar)
      return grammar
    }
    grammar = this.compile(format)
    // A format that fails to compile is not kept: the same request fails the same way, at the same cost.
    grammar.catch(() => this.compiled.delete(key))
    this.compiled.set(key, grammar)
    if (this.compiled.size > this.capacity) {
      const [oldest, dropped] = this.compiled.entries().next().value as [string, Promise<XCompiledGrammar>]
      this.compiled.delete(oldest)
      // Matchers made from it keep what they need; its own memory is freed.
      dropped.then((g) => g.dispose()).catch(() => undefined)
    }
    return grammar
  }

  private async compile(format: ResponseFormat): Promise<XCompiledGrammar> {
    const unenforced = format.type === 'json_schema' ? unenforcedFeature(format.schema) : undefined
    if (unenforced !== undefined)
      throw new KelixError('invalid_value', `the grammar engine cannot enforce ${unenforced}`, {
        param: 'response_format',
      })
    const schema = JSON.stringify(format.type === 'json_object' ? { type: 'object' } : format.schema)
    const strict = format.type === 'json_schema' && format.strict
    await this.probe.check(schema, strict)
    const compiler = await this.compilerOnce()
    return compiler.compileJSONSchema(schema, false, -1, [',', ':'], strict)
  }

  private compilerOnce(): Promise<XGrammarCompiler> {
    this.compiler ??= this.createCompiler()
    return this.compiler
  }

  private async createCompiler(): Promise<XGrammarCompiler> {
    const [lo, hi] = vocabPartRange(this.model.config, TEXT_PART)
    if (lo !== 0) throw new Error(`the text part starts at id ${lo}; constrained decoding expects it at 0`)
    const vocab = Array.from({ length: hi }, (_, id) => {
      const kind = this.tokenizer.tokenKind(id)
      if (kind !== 'text' && kind !== 'added') return ''
      const bytes = this.tokenizer.tokenBytes(id)
      return bytes.some(neverInJsonText) ? '' : byteLevelString(bytes)
    })
    const info = await this.x.TokenizerInfo.createTokenizerInfo(vocab, 'byte_level', false, hi, [
      this.model.config.special_tokens.im_end,
    ])
    return this.x.GrammarCompiler.createGrammarCompiler(info, true)
  }
}

/** A raw control character, or a byte no valid UTF-8 holds. */
function neverInJsonText(byte: number): boolean {
  return byte < 0x20 || byte === 0xc0 || byte === 0xc1 || byte >= 0xf5
}
