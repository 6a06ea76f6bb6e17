/**
 * The Kelix engine: prompts in, blocks out, for many sequences per step.
 *
 *   preparePrompt(messages) ─► blocks      (template, tokenizer, images → visual codes)
 *   add(id, blocks, options)               (a sequence waits with numComputed = 0)
 *   step(plan) ─► per sequence: tokens, text, logprobs, finish reason
 *        │  decoder.onnx over each row's uncomputed blocks (decodes and prefill chunks in separate calls)
 *        └► block_decoder.onnx micro-steps for every row whose blocks are all computed
 *   release(id)                            (frees the cache exactly once)
 *
 * Which sequences run and how many blocks each computes is the scheduler's
 * decision (src/batching); the engine only executes a plan.
 */
import { newTokenBudget } from './context-length.js'
import { decodeBlocks } from './decode/block-decoding.js'
import { runDecoder, type DecoderRow } from './decode/decoder-call.js'
import { ImageTokenizer, type ImageTiming } from './images/image-tokenizer.js'
import { DeviceKvStore } from './kv/device-kv-store.js'
import { HostKvStore } from './kv/host-kv-store.js'
import { PREFIX_CHUNK } from './kv/prefix-cache.js'
import type { KvStore } from './kv/kv-store.js'
import type { KelixModel } from './model.js'
import { BlockBuffer } from './prompt/block-buffer.js'
import { writeImageBlocks } from './prompt/image-blocks.js'
import { imageGrammar, type GrammarItem } from './prompt/image-grammar.js'
import { ResponseGrammars } from './grammar/response-grammars.js'
import type { TokenConstraint } from './grammar/token-constraint.js'
import { promptLogprobs } from './prompt-logprobs.js'
import { TEXT_PART, vocabPartRange } from './vocab-parts.js'
import { Sequence, type SequenceOptions, type SequenceOutput } from './sequence.js'
import { renderPrompt } from './text/chat-prompt.js'
import { TextTokenizer } from './text/tokenizer.js'
import type { ChatMessage, EchoedPrompt, ResponseFormat } from './types.js'
import { KelixError } from '../errors/kelix-error.js'

export interface EngineOptions {
  /** Largest decoded image, in pixels, checked before decoding. Default 50 megapixels. */
  maxImagePixels?: number
  /** Images whose visual codes stay cached (by content hash). Default 256. */
  visualCacheEntries?: number
  /** Positions of prompt prefixes kept for reuse; 0 turns prefix caching off. Default DEFAULT_PREFIX_CACHE_POSITIONS. */
  prefixCachePositions?: number
}

/** Prompt positions looked up in the prefix cache and found there, since construction. */
export interface PrefixStats {
  queriedPositions: number
  reusedPositions: number
}

/** Where step time goes, accumulated since construction (or the last reset). */
export interface StepTimings {
  steps: number
  /** decoder.onnx calls, including building their inputs and storing the cache. */
  llmMs: number
  /** block_decoder.onnx calls. */
  blockDecoderMs: number
  /** Logits processing and sampling. */
  samplingMs: number
  /** Grammar masks of constrained rows (computed while decoder.onnx runs). */
  maskMs: number
  /**
   * Bytes of KV cache passed to or taken from decoder.onnx in host memory. On
   * a GPU provider each crosses to or from the device (the host store's whole
   * past, every step); the device store passes none.
   */
  kvHostBytes: number
}

export interface PreparedPrompt {
  blocks: BlockBuffer
  /** Image positions among the blocks (row markers not included). */
  imagePositions: number
  /** One entry per image, in prompt order. */
  images: ImageTiming[]
}

/**
 * One row of a step plan: fill `cachedBlocks` blocks from the prefix cache
 * (only on a sequence's first step, as `prefixHit` said), then compute
 * `numBlocks` more of its blocks.
 */
export interface PlannedRow {
  id: string
  numBlocks: number
  cachedBlocks?: number
}

export interface StepOutput extends SequenceOutput {
  /** Whether this step sampled a new block for the sequence. */
  sampled: boolean
}

export class Engine {
  readonly kv: KvStore
  readonly tokenizer: TextTokenizer
  readonly images: ImageTokenizer
  readonly timings: StepTimings = { steps: 0, llmMs: 0, blockDecoderMs: 0, samplingMs: 0, maskMs: 0, kvHostBytes: 0 }
  readonly prefixStats: PrefixStats = { queriedPositions: 0, reusedPositions: 0 }
  private readonly sequences = new Map<string, Sequence>()
  /** The generated-image grammar per grid size (it depends on nothing else). */
  private readonly grammars = new Map<number, readonly GrammarItem[]>()
  private readonly responseGrammars: ResponseGrammars

  constructor(
    readonly model: KelixModel,
    options: EngineOptions = {},
  ) {
    this.kv = kvStoreFor(model, options)
    this.tokenizer = new TextTokenizer(model.tokenizer, model.config)
    this.responseGrammars = new ResponseGrammars(model, this.tokenizer)
    this.images = new ImageTokenizer(model.visualTokenizer, model.config, {
      maxPixels: options.maxImagePixels ?? 50_000_000,
      cacheEntries: options.visualCacheEntries ?? 256,
    })
  }

  /** Renders the chat template, tokenizes the text and the images, and lays out the blocks. */
  async preparePrompt(
    messages: readonly ChatMessage[],
    opts: { addGenerationPrompt: boolean },
  ): Promise<PreparedPrompt> {
    const template = this.model.tokenizer.tokenizerConfig.chat_template as string
    const pieces = renderPrompt(this.tokenizer, template, [...messages], opts)
    const images: ImageTiming[] = []
    const visuals = await Promise.all(
      pieces.map((p) =>
        p.kind === 'image' ? this.images.tokenize(p.image, (timing) => images.push(timing)) : undefined,
      ),
    )
    const { block_size: blockSize, special_tokens: special } = this.model.config
    const blocks = new BlockBuffer(blockSize, special.eob, 256)
    const encodeMarker = (text: string) => this.tokenizer.encodeOrdinary(text)
    let imagePositions = 0
    pieces.forEach((piece, i) => {
      const visual = visuals[i]
      if (piece.kind === 'text') for (const id of piece.ids) blocks.push([id])
      else if (visual !== undefined) {
        writeImageBlocks(blocks, this.model.config, encodeMarker, visual)
        imagePositions += visual.rows * visual.cols
      }
    })
    return { blocks, imagePositions, images }
  }

  /**
   * A completions prompt as it is: text tokenized with special-token strings
   * matched (as Hugging Face tokenizers do by default), or token ids, each a
   * text id. One block per token. PROMPT_TOKENS_INVALID for an empty prompt
   * or an id outside the text vocabulary.
   */
  preparePlainPrompt(prompt: { text: string } | { ids: readonly number[] }): PreparedPrompt {
    const ids = 'text' in prompt ? this.tokenizer.encode(prompt.text) : prompt.ids
    if (ids.length === 0) throw new KelixError('invalid_prompt', 'the prompt is empty')
    this.checkTextIds(ids)
    const { block_size: blockSize, special_tokens: special } = this.model.config
    const blocks = new BlockBuffer(blockSize, special.eob, ids.length)
    for (const id of ids) blocks.push([id])
    return { blocks, imagePositions: 0, images: [] }
  }

  /** PROMPT_TOKENS_INVALID naming the first id outside the text vocabulary. */
  checkTextIds(ids: readonly number[]): void {
    const [lo, hi] = vocabPartRange(this.model.config, TEXT_PART)
    const bad = ids.findIndex((id) => !Number.isInteger(id) || id < lo || id >= hi)
    if (bad >= 0)
      throw new KelixError('invalid_prompt', `prompt token ${bad} is ${ids[bad]}, not a text token id (0 to ${hi - 1})`)
  }

  /** Registers a sequence over its own copy of the prompt; nothing runs until a step plans it. */
  add(id: string, prompt: PreparedPrompt, options: SequenceOptions): void {
    try {
      if (this.sequences.has(id)) throw new Error(`sequence ${id} already exists`)
      newTokenBudget({
        context: this.contextLength,
        promptTokens: prompt.blocks.length,
        imagePositions: prompt.imagePositions,
        requested: options.maxNewTokens,
      })
      this.sequences.set(id, new Sequence(id, this.model, this.tokenizer, prompt.blocks.clone(), options))
    } catch (err) {
      options.constraint?.dispose()
      throw err
    }
  }

  /**
   * A fresh grammar state for one answer in `format` (pass it to `add`, which
   * then owns it). RESPONSE_FORMAT_INVALID when the schema cannot be compiled.
   */
  constraintFor(format: ResponseFormat): Promise<TokenConstraint> {
    return this.responseGrammars.constraint(format)
  }

  /**
   * Registers an image generation: the prompt (user turn, assistant turn
   * opened) plus <|vision_start|>, then the grid grammar. The span's hidden
   * states are captured as it is computed; read them with `imageCondition`.
   */
  addImageGeneration(
    id: string,
    prompt: PreparedPrompt,
    options: Omit<SequenceOptions, 'grammar' | 'maxNewTokens' | 'stop' | 'stopTokenIds'> & { grid: number },
  ): void {
    const blocks = prompt.blocks.clone()
    blocks.push([this.model.config.special_tokens.vision_start])
    const grammar = this.grammarFor(options.grid)
    this.add(
      id,
      { ...prompt, blocks },
      { sampling: options.sampling, maxNewTokens: grammar.length, stop: [], stopTokenIds: [], grammar },
    )
  }

  /** Blocks an image generation of this grid writes after its prompt. */
  imageGrammarLength(grid: number): number {
    return this.grammarFor(grid).length
  }

  private grammarFor(grid: number): readonly GrammarItem[] {
    let grammar = this.grammars.get(grid)
    if (grammar === undefined) {
      grammar = imageGrammar(this.model.config, (text) => this.tokenizer.encodeOrdinary(text), grid)
      this.grammars.set(grid, grammar)
    }
    return grammar
  }

  /** The model's context, positions: a sequence's prompt and generated blocks together never pass it. */
  get contextLength(): number {
    return this.model.config.llm.max_position_embeddings
  }

  get(id: string): Sequence | undefined {
    return this.sequences.get(id)
  }

  get size(): number {
    return this.sequences.size
  }

  /** Runs one plan; returns an output for every planned sequence. */
  async step(plan: readonly PlannedRow[]): Promise<Map<string, StepOutput>> {
    const rows: DecoderRow[] = []
    for (const p of plan) rows.push(await this.planRow(p))
    const llmStart = performance.now()
    // The LLM call starts first; the grammar masks of the rows that sample this step are computed while it runs.
    const llm = this.runLlm(rows)
    await this.prepareMasks(rows)
    const { due: ready, finishing, scoring } = await llm
    for (const row of rows) await this.rememberPrompt(this.sequences.get(row.seqId) as Sequence)
    for (const s of scoring)
      s.seq.promptLogprobs.push(
        ...(await promptLogprobs(this.model, this.tokenizer, s.states, s.nextIds, s.seq.options.echo?.logprobs ?? 0)),
      )
    this.timings.llmMs += performance.now() - llmStart
    this.timings.steps++
    const outputs = new Map<string, StepOutput>()
    for (const p of plan)
      outputs.set(p.id, { tokenIds: [], text: '', logprobs: undefined, finishReason: undefined, sampled: false })
    for (const seq of finishing) outputs.set(seq.id, { ...seq.finishImage(), sampled: false })
    const prompts = new Map(
      ready
        .filter((d) => d.seq.options.echo !== undefined && !d.seq.promptReported)
        .map((d) => [d.seq.id, this.echoed(d.seq)]),
    )
    // max_tokens 0: the prompt alone (scored), nothing sampled.
    for (const { seq } of ready.filter((d) => d.seq.options.maxNewTokens === 0)) {
      seq.finishReason = 'length'
      outputs.set(seq.id, {
        tokenIds: [],
        text: '',
        logprobs: undefined,
        finishReason: 'length',
        sampled: false,
        ...withPrompt(prompts.get(seq.id)),
      })
    }
    const due = ready.filter((d) => d.seq.options.maxNewTokens > 0)
    if (due.length > 0) {
      const hidden = this.model.config.llm.hidden_size
      const states = new Float32Array(due.length * hidden)
      due.forEach((d, i) => states.set(d.hidden, i * hidden))
      const blocks = await decodeBlocks(
        this.model,
        states,
        due.map((d) => d.seq),
        this.timings,
      )
      due.forEach((d, i) =>
        outputs.set(d.seq.id, {
          ...d.seq.accept(blocks[i] as number[]),
          sampled: true,
          ...withPrompt(prompts.get(d.seq.id)),
        }),
      )
    }
    return outputs
  }

  /** The prompt as `echo` reports it, marked as reported. */
  private echoed(seq: Sequence): EchoedPrompt {
    seq.promptReported = true
    const ids = Array.from({ length: seq.promptLength }, (_, i) => seq.blocks.firstId(i))
    if (seq.options.echo?.logprobs === undefined) return { text: this.tokenizer.decode(ids), logprobs: undefined }
    const first = ids[0] as number
    const head = {
      id: first,
      text: this.tokenizer.tokenText(first),
      bytes: [...this.tokenizer.tokenBytes(first)],
      logprob: null,
      top: [],
    }
    return { text: this.tokenizer.decode(ids), logprobs: [head, ...seq.promptLogprobs] }
  }

  /** decoder.onnx over the rows' new blocks: decodes, then prefill chunks, in separate calls. */
  private async runLlm(
    rows: readonly DecoderRow[],
  ): Promise<{ due: Array<{ seq: Sequence; hidden: Float32Array }>; finishing: Sequence[]; scoring: PromptScoring[] }> {
    const due: Array<{ seq: Sequence; hidden: Float32Array }> = []
    const finishing: Sequence[] = []
    const scoring: PromptScoring[] = []
    const hidden = this.model.config.llm.hidden_size
    for (const group of [rows.filter((r) => r.newSlots === 1), rows.filter((r) => r.newSlots > 1)]) {
      if (group.length === 0) continue
      const {
        rows: ordered,
        lastHidden,
        states,
        seq: width,
        kvHostBytes,
      } = await runDecoder(this.model, this.kv, group)
      this.timings.kvHostBytes += kvHostBytes
      ordered.forEach((row, r) => {
        const seq = this.sequences.get(row.seqId) as Sequence
        const rowStates = states.subarray(r * width * hidden, (r * width + row.newSlots) * hidden)
        seq.captureStates(seq.numComputed, rowStates, row.newSlots)
        const scored = promptPositionsToScore(seq, row.newSlots)
        if (scored !== undefined)
          scoring.push({
            seq,
            states: rowStates.slice((scored.from - seq.numComputed) * hidden, (scored.to - seq.numComputed) * hidden),
            nextIds: scored.nextIds,
          })
        seq.numComputed += row.newSlots
        if (seq.caughtUp && seq.awaitingFinalCompute) finishing.push(seq)
        else if (seq.caughtUp) due.push({ seq, hidden: lastHidden.subarray(r * hidden, (r + 1) * hidden) })
      })
    }
    return { due, finishing, scoring }
  }

  /** The grammar masks of constrained rows that will sample this step (their blocks all computed after it). */
  private async prepareMasks(rows: readonly DecoderRow[]): Promise<void> {
    const sampling = rows
      .map((row) => this.sequences.get(row.seqId) as Sequence)
      .filter(
        (seq, i) =>
          seq.constraint !== undefined && seq.numComputed + (rows[i] as DecoderRow).newSlots === seq.blocks.length,
      )
    for (const seq of sampling) this.timings.maskMs += await (seq.constraint as TokenConstraint).prepare()
  }

  /** Frees the sequence's cache so it can be recomputed later (preemption by recompute). */
  preempt(id: string): void {
    this.kv.free(id)
    this.sequences.get(id)?.resetComputed()
  }

  /** Forgets a sequence and frees its cache; idempotent. */
  release(id: string): void {
    this.kv.free(id)
    this.sequences.get(id)?.constraint?.dispose()
    this.sequences.delete(id)
  }

  private async planRow(p: PlannedRow): Promise<DecoderRow> {
    const seq = this.sequences.get(p.id)
    if (seq === undefined) throw new Error(`step plans unknown sequence ${p.id}`)
    if (seq.finishReason !== undefined) throw new Error(`step plans finished sequence ${p.id}`)
    if ((p.cachedBlocks ?? 0) > 0) await this.reusePrompt(seq, p.cachedBlocks as number)
    const remaining = seq.blocks.length - seq.numComputed
    if (p.numBlocks < 1 || p.numBlocks > remaining)
      throw new Error(`step plans ${p.numBlocks} blocks for ${p.id}, which has ${remaining} uncomputed`)
    return { seqId: p.id, newSlots: p.numBlocks, blocks: seq.blocks.view(seq.numComputed, p.numBlocks) }
  }

  /**
   * Prompt blocks of a sequence not yet computed that the prefix cache holds,
   * in whole chunks; the last prompt block is never among them (its hidden
   * state starts generation). Counted as a lookup for the cache's hit rate.
   */
  prefixHit(id: string): number {
    const seq = this.sequences.get(id)
    // A scored prompt needs every position's hidden state: none may come from the cache.
    if (seq === undefined || seq.numComputed > 0 || seq.options.echo?.logprobs !== undefined) return 0
    const hit = this.canReusePrompt(seq.promptLength) ? this.kv.prefixHit(seq.blocks.view(0, seq.promptLength - 1)) : 0
    this.prefixStats.queriedPositions += seq.promptLength
    this.prefixStats.reusedPositions += hit
    return hit
  }

  /**
   * Whether a prompt of this length can take whole chunks from the prefix
   * cache at all: caching on, and a whole chunk before the last block (which
   * is always computed).
   */
  canReusePrompt(promptLength: number): boolean {
    return this.kv.prefixCaching && promptLength - 1 >= PREFIX_CHUNK
  }

  /** Fills a sequence's first blocks from the prefix cache, exactly as `prefixHit` found them. */
  private async reusePrompt(seq: Sequence, blocks: number): Promise<void> {
    if (seq.numComputed > 0) throw new Error(`step asks ${seq.id} to reuse cached blocks after it started computing`)
    const reused = await this.kv.reusePrefix(seq.id, seq.blocks.view(0, blocks))
    if (reused !== blocks)
      throw new Error(`step asks ${seq.id} to reuse ${blocks} cached blocks; the prefix cache holds ${reused}`)
    seq.numComputed = reused
    seq.cachedPromptBlocks = reused
  }

  /** Offers the sequence's newly computed whole prompt chunks to the prefix cache. */
  private async rememberPrompt(seq: Sequence): Promise<void> {
    const whole = Math.floor(Math.min(seq.numComputed, seq.promptLength) / PREFIX_CHUNK) * PREFIX_CHUNK
    if (whole <= seq.rememberedPromptBlocks) return
    await this.kv.rememberPrefix(seq.id, seq.blocks.view(0, whole))
    seq.rememberedPromptBlocks = whole
  }
}

/** The cache on the model's GPU when it can stay there, in host memory otherwise. */
function kvStoreFor(model: KelixModel, options: EngineOptions): KvStore {
  const prefix =
    options.prefixCachePositions === undefined ? {} : { prefixCachePositions: options.prefixCachePositions }
  if (model.deviceKv !== undefined) return new DeviceKvStore(model.config, model.deviceKv, prefix)
  return new HostKvStore(model.config, {
    ...prefix,
    // An empty past crashes ONNX Runtime's WebGPU provider: a GPU gets one masked slot at least.
    minPastSlots: model.providers.inUse[0] === 'cpu' ? 0 : 1,
  })
}

/** Prompt positions computed in a step whose next-token logprobs are still to be found. */
interface PromptScoring {
  seq: Sequence
  /** Hidden states of the positions, in order. */
  states: Float32Array
  /** The prompt token after each position. */
  nextIds: number[]
}

/**
 * Of the `newSlots` positions a sequence computes from `numComputed`, those
 * whose next token is a prompt token and not yet scored (a preempted prompt is
 * computed again, and scored once).
 */
function promptPositionsToScore(
  seq: Sequence,
  newSlots: number,
): { from: number; to: number; nextIds: number[] } | undefined {
  if (seq.options.echo?.logprobs === undefined) return undefined
  const from = Math.max(seq.numComputed, seq.promptLogprobs.length)
  const to = Math.min(seq.numComputed + newSlots, seq.promptLength - 1)
  if (from >= to) return undefined
  return { from, to, nextIds: Array.from({ length: to - from }, (_, i) => seq.blocks.firstId(from + i + 1)) }
}

/** The echoed prompt as an output field, when there is one. */
const withPrompt = (prompt: EchoedPrompt | undefined) => (prompt === undefined ? {} : { prompt })
