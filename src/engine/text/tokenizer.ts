/**
 * The text tokenizer of a Kelix model: a byte-level BPE read from
 * tokenizer.json. Special tokens are matched here, not by the library, so
 * that text a user wrote can be encoded with no special-token matching at all
 * (what Hugging Face calls `split_special_tokens`).
 *
 * The library instance is built from tokenizer.json *without* its special
 * added tokens: it cannot produce a special id, whatever the text says.
 * Trusted text (the rendered template) is first split at special-token strings
 * by `SpecialSplitter`; only the text between goes to the library.
 */
import { Tokenizer } from '@huggingface/tokenizers'
import type { KelixConfig, SpecialTokens } from '../model-config.js'
import type { TokenizerData } from '../model.js'
import { byteLevelBytes } from './byte-level.js'
import { SpecialSplitter, type Segment, type SpecialToken } from './special-splitter.js'
import { KelixError } from '../../errors/kelix-error.js'

/**
 * How an id decodes: `text` is a byte-level vocabulary token, `added` a
 * non-special added token (decodes to its content), `special` a special token
 * (skipped when asked), `unknown` an id with no token (visual ids, padding rows).
 */
export type TokenKind = 'text' | 'added' | 'special' | 'unknown'

const KINDS: readonly TokenKind[] = ['unknown', 'text', 'added', 'special']
const KIND_CODE: Record<TokenKind, number> = { unknown: 0, text: 1, added: 2, special: 3 }

export interface DecodeOptions {
  /** Leaves special tokens out of the text. Default false. */
  skipSpecialTokens?: boolean
}

interface AddedTokenJson {
  id: number
  content: string
  special?: boolean
  lstrip?: boolean
  rstrip?: boolean
}

const TOKENIZER_FILE = 'tokenizer.json'

/** What is used of the library's Tokenizer; its bundled types do not resolve under NodeNext and arrive as `any`. */
interface LibraryTokenizer {
  encode(text: string, options: { add_special_tokens: boolean }): { ids: number[] }
  model: { vocab: Array<string | undefined> } | null
}

export class TextTokenizer {
  /** config.json's `special_tokens`: the ids the engine refers to by name. */
  readonly specialIds: Readonly<SpecialTokens>
  /** Every special token, by content: template markers and the ids config.json names. */
  readonly specialTokens: readonly SpecialToken[]
  /** `bos_token`, `eos_token`, `pad_token`, `unk_token` from tokenizer_config.json, for the chat template. */
  readonly templateTokens: Readonly<Record<string, string>>

  readonly #ordinary: LibraryTokenizer
  readonly #splitter: SpecialSplitter
  readonly #specialIdSet: ReadonlySet<number>
  /** Per id: its KIND_CODE, and its bytes at `#bytes[#offsets[id]..#offsets[id + 1]]`. */
  readonly #kinds: Uint8Array
  readonly #offsets: Uint32Array
  readonly #bytes: Uint8Array
  /** Content of every added token, special or not. */
  readonly #addedContent: ReadonlyMap<number, string>

  /**
   * @param data tokenizer.json and tokenizer_config.json, as `loadModel` reads them
   * @param config config.json; its `special_tokens` are always treated as special
   * @throws KelixError MODEL_TOKENIZER_MISMATCH when the tokenizer is not byte-level BPE or the library rejects it
   */
  constructor(data: TokenizerData, config: KelixConfig) {
    const { tokenizerJson, tokenizerConfig } = data
    const decoder = tokenizerJson.decoder as { type?: unknown } | null | undefined
    if (decoder?.type !== 'ByteLevel') {
      throw new KelixError(
        'MODEL_TOKENIZER_MISMATCH',
        `decoder is ${JSON.stringify(decoder?.type)}, expected a ByteLevel tokenizer`,
        { file: TOKENIZER_FILE },
      )
    }
    const added = addedTokens(tokenizerJson)
    const specialContent = specialContents(added, tokenizerConfig, config)
    const isSpecial = (t: AddedTokenJson) => specialContent.has(t.content)

    this.specialIds = { ...config.special_tokens }
    this.specialTokens = added
      .filter(isSpecial)
      .map((t) => ({ id: t.id, content: t.content, lstrip: t.lstrip === true, rstrip: t.rstrip === true }))
    this.#specialIdSet = new Set(this.specialTokens.map((t) => t.id))
    this.#splitter = new SpecialSplitter(this.specialTokens)
    this.templateTokens = namedTokens(tokenizerConfig)
    try {
      this.#ordinary = new Tokenizer(
        { ...tokenizerJson, added_tokens: added.filter((t) => !isSpecial(t)) },
        tokenizerConfig,
      )
    } catch (err) {
      throw new KelixError('MODEL_TOKENIZER_MISMATCH', `the tokenizer library rejected it: ${(err as Error).message}`, {
        file: TOKENIZER_FILE,
      })
    }

    const tokens = [...(this.#ordinary.model?.vocab ?? [])]
    for (const t of this.specialTokens) tokens[t.id] = t.content
    this.#addedContent = new Map(added.map((t) => [t.id, t.content]))
    const table = byteTable(tokens, (id) =>
      this.#specialIdSet.has(id) ? 'special' : this.#addedContent.has(id) ? 'added' : 'text',
    )
    this.#kinds = table.kinds
    this.#offsets = table.offsets
    this.#bytes = table.bytes
  }

  /** Encodes trusted text: special-token strings in it become their ids. */
  encode(text: string): number[] {
    return this.splitSpecial(text).flatMap((s) => (typeof s === 'number' ? [s] : this.encodeOrdinary(s)))
  }

  /** Encodes untrusted text: special-token strings in it are ordinary bytes, never special ids. */
  encodeOrdinary(text: string): number[] {
    if (text.length === 0) return []
    const ids = this.#ordinary.encode(text, { add_special_tokens: false }).ids
    // The library instance holds no special token, so this only fails for a vocabulary that lists one as a plain token.
    const leaked = ids.find((id) => this.#specialIdSet.has(id))
    if (leaked !== undefined)
      throw new KelixError('MODEL_TOKENIZER_MISMATCH', `the vocabulary maps ordinary text to special token ${leaked}`, {
        file: TOKENIZER_FILE,
      })
    return ids
  }

  /** Splits trusted text at special-token strings: ids for the specials, strings for the text between. */
  splitSpecial(text: string): Segment[] {
    return this.#splitter.split(text)
  }

  /**
   * The text of `ids`, as the tokenizer library decodes it with
   * `clean_up_tokenization_spaces: false`: the bytes of consecutive text
   * tokens are decoded together (invalid UTF-8 becomes U+FFFD), added tokens
   * contribute their content, unknown ids nothing.
   */
  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    const utf8 = new TextDecoder('utf-8', { ignoreBOM: true })
    let text = ''
    for (const id of ids) {
      const kind = this.tokenKind(id)
      if (kind === 'text') text += utf8.decode(this.#view(id), { stream: true })
      else if (kind === 'added' || (kind === 'special' && options.skipSpecialTokens !== true))
        text += utf8.decode() + this.tokenText(id)
    }
    return text + utf8.decode()
  }

  /** What `id` is; see `TokenKind`. */
  tokenKind(id: number): TokenKind {
    return KINDS[this.#kinds[id] ?? 0] ?? 'unknown'
  }

  /** The raw bytes `id` stands for: its bytes for a text token, its UTF-8 content for an added token, none for an unknown id. */
  tokenBytes(id: number): Uint8Array {
    return this.#view(id).slice()
  }

  /** The text of `id` alone; a text token that ends inside a UTF-8 character shows U+FFFD for the partial bytes. */
  tokenText(id: number): string {
    const content = this.#addedContent.get(id)
    if (content !== undefined) return content
    return new TextDecoder('utf-8', { ignoreBOM: true }).decode(this.#view(id))
  }

  /** Whether `id` is a special token. */
  isSpecial(id: number): boolean {
    return this.#specialIdSet.has(id)
  }

  #view(id: number): Uint8Array {
    const start = this.#offsets[id]
    const end = this.#offsets[id + 1]
    if (start === undefined || end === undefined) return new Uint8Array(0)
    return this.#bytes.subarray(start, end)
  }
}

function addedTokens(tokenizerJson: Record<string, unknown>): AddedTokenJson[] {
  const list = tokenizerJson.added_tokens ?? []
  if (!Array.isArray(list))
    throw new KelixError('MODEL_TOKENIZER_MISMATCH', 'added_tokens is not an array', { file: TOKENIZER_FILE })
  return list.map((t: unknown, i) => {
    const token = t as Partial<AddedTokenJson> | null
    if (!Number.isInteger(token?.id) || typeof token?.content !== 'string' || token.content.length === 0) {
      throw new KelixError('MODEL_TOKENIZER_MISMATCH', `added_tokens[${i}] needs an integer id and non-empty content`, {
        file: TOKENIZER_FILE,
      })
    }
    return token as AddedTokenJson
  })
}

/** Special means: marked special, listed in additional_special_tokens, or named by config.json. */
function specialContents(
  added: readonly AddedTokenJson[],
  tokenizerConfig: Record<string, unknown>,
  config: KelixConfig,
): Set<string> {
  const configIds = new Set(Object.values(config.special_tokens))
  const extra = tokenizerConfig.additional_special_tokens
  const listed = new Set(Array.isArray(extra) ? extra.map(tokenString).filter((s) => s !== undefined) : [])
  return new Set(
    added.filter((t) => t.special === true || listed.has(t.content) || configIds.has(t.id)).map((t) => t.content),
  )
}

/** tokenizer_config.json writes a token as a string or as `{content: string, ...}`. */
function tokenString(value: unknown): string | undefined {
  if (typeof value === 'string') return value
  const content = (value as { content?: unknown } | null)?.content
  return typeof content === 'string' ? content : undefined
}

function namedTokens(tokenizerConfig: Record<string, unknown>): Record<string, string> {
  const named: Record<string, string> = {}
  for (const key of ['bos_token', 'eos_token', 'pad_token', 'unk_token']) {
    const value = tokenString(tokenizerConfig[key])
    if (value !== undefined) named[key] = value
  }
  return named
}

/** Packs every token's bytes into one buffer; built once, so decoding never goes back to strings. */
function byteTable(tokens: ReadonlyArray<string | undefined>, kindOf: (id: number) => Exclude<TokenKind, 'unknown'>) {
  const utf8 = new TextEncoder()
  const kinds = new Uint8Array(tokens.length)
  const parts: Uint8Array[] = []
  const offsets = new Uint32Array(tokens.length + 1)
  for (let id = 0; id < tokens.length; id++) {
    const token = tokens[id]
    let bytes: Uint8Array = new Uint8Array(0)
    if (token !== undefined) {
      const kind = kindOf(id)
      kinds[id] = KIND_CODE[kind]
      const decoded = kind === 'text' ? byteLevelBytes(token) : utf8.encode(token)
      if (decoded === undefined) {
        throw new KelixError(
          'MODEL_TOKENIZER_MISMATCH',
          `token ${id} (${JSON.stringify(token)}) has a character outside the byte-level alphabet`,
          { file: TOKENIZER_FILE },
        )
      }
      bytes = decoded
    }
    parts.push(bytes)
    offsets[id + 1] = (offsets[id] ?? 0) + bytes.length
  }
  const all = new Uint8Array(offsets[tokens.length] ?? 0)
  parts.forEach((p, id) => all.set(p, offsets[id]))
  return { kinds, offsets, bytes: all }
}
