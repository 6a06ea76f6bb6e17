/**
 * One sequence being generated: its blocks (prompt, then output), how many
 * are in the KV cache, its sampler state, and its text so far.
 *
 *   blocks:  [ prompt … | generated … ]
 *             ^computed^  (numComputed ≤ blocks.length; a step computes the rest, then samples)
 */
import { reachedLength } from './context-length.js'
import type { KelixModel } from './model.js'
import type { PartLogits, SlotChooser } from './decode/block-decoding.js'
import type { TokenConstraint } from './grammar/token-constraint.js'
import { BlockBuffer } from './prompt/block-buffer.js'
import { subCodebookRange, type GrammarItem } from './prompt/image-grammar.js'
import { codebookPart, TEXT_PART, vocabPartRange, type VocabPart } from './vocab-parts.js'
import { rngForSeed, Sampler, TokenHistory, type Rng, type SampleResult } from './sampling/index.js'
import { IncrementalDetokenizer } from './text/incremental-detokenizer.js'
import { StopStringMatcher } from './text/stop-strings.js'
import type { TextTokenizer } from './text/tokenizer.js'
import type { EchoedPrompt, FinishReason, SamplingParams, TokenLogprob } from './types.js'

export interface SequenceOptions {
  sampling: SamplingParams
  /** Blocks to generate at most. */
  maxNewTokens: number
  /** Up to 4 strings that end generation; never emitted. */
  stop: readonly string[]
  /** Token ids that end generation (besides <|im_end|>). */
  stopTokenIds: readonly number[]
  /** Image generation: the blocks to write after <|vision_start|>; chat answers when absent. */
  grammar?: readonly GrammarItem[]
  /** Chat answers in a response format: the text ids the grammar allows, step by step (the sequence disposes of it). */
  constraint?: TokenConstraint
  /**
   * Report the prompt back once it is computed (completions' `echo`), with
   * its tokens' logprobs and this many alternatives each when `logprobs` is
   * set. Its positions are then all computed, none taken from the prefix cache.
   */
  echo?: { logprobs: number | undefined }
}

/** Last-layer hidden states of an image span, one row per position from `start`. */
export interface SpanCapture {
  start: number
  states: Float32Array
}

/** What one step produced for one sequence. */
export interface SequenceOutput {
  /** Ids of the blocks generated this step (first id of each). */
  tokenIds: number[]
  /** Text to emit (never a broken character, never a stop string). */
  text: string
  logprobs: TokenLogprob[] | undefined
  finishReason: FinishReason | undefined
  /** Why the sequence ended in error instead (its response grammar allowed nothing further). */
  failure?: string
  /** The prompt, reported once it is computed, when `echo` asked for it. */
  prompt?: EchoedPrompt
}

export class Sequence implements SlotChooser {
  readonly blocks: BlockBuffer
  numComputed = 0
  /** Prompt blocks filled from the prefix cache instead of computed (the last admission's). */
  cachedPromptBlocks = 0
  /** Prompt blocks already offered to the prefix cache. */
  rememberedPromptBlocks = 0
  finishReason: FinishReason | undefined
  readonly generatedIds: number[] = []
  private readonly sampler: Sampler
  private readonly history: TokenHistory
  private readonly rng: Rng
  private readonly detokenizer: IncrementalDetokenizer
  private readonly stopMatcher: StopStringMatcher
  private lastSample: SampleResult | undefined
  /** Image generation: hidden states from <|vision_start|> on, filled as positions are computed. */
  readonly capture: SpanCapture | undefined
  /** Image generation: the grammar is complete; the last block still needs one forward pass for its hidden state. */
  awaitingFinalCompute = false
  /** Logprobs of prompt tokens 1, 2, … as their positions are computed (echo with logprobs). */
  readonly promptLogprobs: TokenLogprob[] = []
  /** The echoed prompt went out (it goes once, also after a preemption). */
  promptReported = false

  constructor(
    readonly id: string,
    private readonly model: KelixModel,
    private readonly tokenizer: TextTokenizer,
    prompt: BlockBuffer,
    readonly options: SequenceOptions,
  ) {
    this.blocks = prompt
    this.promptLength = prompt.length
    this.sampler = new Sampler(options.sampling, model.config.vocab.vocab_size)
    this.history = new TokenHistory(Array.from({ length: prompt.length }, (_, i) => prompt.firstId(i)))
    this.rng = rngForSeed(options.sampling.seed)
    this.detokenizer = new IncrementalDetokenizer(tokenizer)
    this.stopMatcher = new StopStringMatcher([...options.stop])
    if (options.grammar !== undefined) {
      const hidden = model.config.llm.hidden_size
      // The span runs from <|vision_start|> (the prompt's last block) to <|vision_end|> (the grammar's last).
      this.capture = { start: prompt.length - 1, states: new Float32Array((options.grammar.length + 1) * hidden) }
    }
  }

  /** Copies hidden states of newly computed positions inside the image span. */
  captureStates(firstPosition: number, states: Float32Array, count: number): void {
    const capture = this.capture
    if (capture === undefined) return
    const hidden = this.model.config.llm.hidden_size
    for (let j = 0; j < count; j++) {
      const at = firstPosition + j - capture.start
      if (at >= 0 && (at + 1) * hidden <= capture.states.length)
        capture.states.set(states.subarray(j * hidden, (j + 1) * hidden), at * hidden)
    }
  }

  forcedId(): number | undefined {
    const item = this.options.grammar?.[this.generatedIds.length]
    return item?.kind === 'forced' ? item.id : undefined
  }

  readonly promptLength: number

  /** True when every known block is in the cache, so the next step samples. */
  get caughtUp(): boolean {
    return this.numComputed === this.blocks.length
  }

  /** Chat answers sample text ids; slot k of an image block samples sub-codebook k. */
  vocabPart(slot: number): VocabPart {
    return this.options.grammar === undefined ? TEXT_PART : codebookPart(slot)
  }

  /** Chat answers: slot 0 is a text token (the text part holds no visual id; <eob> masked); a text token completes its block. */
  choose(slot: number, _chosen: readonly number[], logits: PartLogits): { id: number; complete: boolean } {
    if (this.options.grammar !== undefined) return this.chooseImageSlot(slot, logits)
    logits.values[this.model.config.special_tokens.eob - logits.firstId] = -Infinity
    this.options.constraint?.apply(logits)
    this.lastSample = this.sampleIn(TEXT_PART, logits)
    return { id: this.lastSample.id, complete: slot === 0 }
  }

  /** Image blocks: slot k within sub-codebook k; the block is complete after the last sub-codebook. */
  private chooseImageSlot(slot: number, logits: PartLogits): { id: number; complete: boolean } {
    this.lastSample = this.sampleIn(codebookPart(slot), logits)
    return { id: this.lastSample.id, complete: slot === this.model.config.vocab.num_codebooks - 1 }
  }

  private sampleIn(part: VocabPart, logits: PartLogits): SampleResult {
    const [lo, hi] = vocabPartRange(this.model.config, part)
    return this.sampler.sample(logits.values, lo, hi, this.history, this.rng, logits.firstId)
  }

  /** Records a generated block and works out text, logprobs and whether the sequence ended. */
  accept(ids: readonly number[]): SequenceOutput {
    if (this.options.grammar !== undefined) return this.acceptImageBlock(ids)
    const tokenId = ids[0] as number
    if (this.options.constraint?.accept(tokenId) === false) {
      // Not part of the answer: the sequence ends here, in error.
      this.finishReason = 'stop'
      return {
        tokenIds: [],
        text: '',
        logprobs: undefined,
        finishReason: 'stop',
        failure: `the response format's grammar refused token ${tokenId}`,
      }
    }
    this.blocks.push(ids)
    this.generatedIds.push(tokenId)
    this.history.add(tokenId)
    const logprobs = this.logprobsFor(tokenId)
    const { im_end: imEnd } = this.model.config.special_tokens
    let text = ''
    let stoppedByString = false
    if (tokenId === imEnd || this.options.stopTokenIds.includes(tokenId)) {
      this.finishReason = 'stop'
    } else {
      const matched = this.stopMatcher.push(this.detokenizer.push([tokenId]))
      text = matched.text
      stoppedByString = matched.stopped
      if (stoppedByString) this.finishReason = 'stop'
    }
    if (this.finishReason === undefined && this.outOfRoom()) this.finishReason = 'length'
    // Held-back text (an unfinished character, a possible stop-string prefix) belongs to the answer unless a stop string cut it.
    if (this.finishReason !== undefined && !stoppedByString) text += this.flushText()
    return { tokenIds: [tokenId], text, logprobs, finishReason: this.finishReason }
  }

  private acceptImageBlock(ids: readonly number[]): SequenceOutput {
    this.blocks.push(ids)
    this.generatedIds.push(ids[0] as number)
    if (this.generatedIds.length === this.options.grammar?.length) this.awaitingFinalCompute = true
    return { tokenIds: [ids[0] as number], text: '', logprobs: undefined, finishReason: undefined }
  }

  /** Ends an image generation once its last block is computed. */
  finishImage(): SequenceOutput {
    this.awaitingFinalCompute = false
    this.finishReason = 'stop'
    return { tokenIds: [], text: '', logprobs: undefined, finishReason: 'stop' }
  }

  /** Whether the next sampled id is constrained: its mask must be prepared before the step samples. */
  get constraint(): TokenConstraint | undefined {
    return this.options.constraint
  }

  /** Drops the cache position count (the caller frees the cache): the next steps recompute every block. */
  resetComputed(): void {
    this.numComputed = 0
  }

  /** Generated image blocks so far, each its 8 codes (grammar mode). */
  imageCodes(): Int32Array {
    const grammar = this.options.grammar ?? []
    const books = this.model.config.vocab.num_codebooks
    const codes: number[] = []
    grammar.forEach((item, i) => {
      if (item.kind !== 'image') return
      const block = this.blocks.view(this.promptLength + i, 1)
      for (let k = 0; k < books; k++) codes.push((block[k] as number) - subCodebookRange(this.model.config, k)[0])
    })
    return Int32Array.from(codes)
  }

  private outOfRoom(): boolean {
    return reachedLength(
      this.generatedIds.length,
      this.options.maxNewTokens,
      this.blocks.length,
      this.model.config.llm.max_position_embeddings,
    )
  }

  private flushText(): string {
    return this.stopMatcher.push(this.detokenizer.finish()).text + this.stopMatcher.flush()
  }

  private logprobsFor(tokenId: number): TokenLogprob[] | undefined {
    const sample = this.lastSample
    if (this.options.sampling.topLogprobs === undefined || sample === undefined) return undefined
    const token = (id: number) => ({
      id,
      text: this.tokenizer.tokenText(id),
      bytes: [...this.tokenizer.tokenBytes(id)],
    })
    return [
      {
        ...token(tokenId),
        logprob: sample.logprob as number,
        top: (sample.top ?? []).map((t) => ({ ...token(t.id), logprob: t.logprob })),
      },
    ]
  }
}
