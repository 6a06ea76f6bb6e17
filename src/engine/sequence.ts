/**
 * One sequence being generated: its blocks (prompt, then output), how many
 * are in the KV cache, its sampler state, and its text so far.
 *
 *   blocks:  [ prompt … | generated … ]
 *             ^computed^  (numComputed ≤ blocks.length; a step computes the rest, then samples)
 */
import type { KelixModel } from './model.js'
import type { SlotChooser } from './decode/block-decoding.js'
import { BlockBuffer } from './prompt/block-buffer.js'
import { rngForSeed, Sampler, TokenHistory, type Rng, type SampleResult } from './sampling/index.js'
import { IncrementalDetokenizer } from './text/incremental-detokenizer.js'
import { StopStringMatcher } from './text/stop-strings.js'
import type { TextTokenizer } from './text/tokenizer.js'
import type { FinishReason, SamplingParams, TokenLogprob } from './types.js'

export interface SequenceOptions {
  sampling: SamplingParams
  /** Blocks to generate at most. */
  maxNewTokens: number
  /** Up to 4 strings that end generation; never emitted. */
  stop: readonly string[]
  /** Token ids that end generation (besides <|im_end|>). */
  stopTokenIds: readonly number[]
}

/** What one step produced for one sequence. */
export interface SequenceOutput {
  /** Ids of the blocks generated this step (first id of each). */
  tokenIds: number[]
  /** Text to emit (never a broken character, never a stop string). */
  text: string
  logprobs: TokenLogprob[] | undefined
  finishReason: FinishReason | undefined
}

export class Sequence implements SlotChooser {
  readonly blocks: BlockBuffer
  numComputed = 0
  finishReason: FinishReason | undefined
  readonly generatedIds: number[] = []
  private readonly sampler: Sampler
  private readonly history: TokenHistory
  private readonly rng: Rng
  private readonly detokenizer: IncrementalDetokenizer
  private readonly stopMatcher: StopStringMatcher
  private lastSample: SampleResult | undefined

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
  }

  readonly promptLength: number

  /** True when every known block is in the cache, so the next step samples. */
  get caughtUp(): boolean {
    return this.numComputed === this.blocks.length
  }

  /** Chat answers: slot 0 is a text token (visual ids and <eob> masked); a text token completes its block. */
  choose(slot: number, _chosen: readonly number[], logits: Float32Array): { id: number; complete: boolean } {
    const { text_vocab_size: textVocab } = this.model.config.vocab
    logits[this.model.config.special_tokens.eob] = -Infinity
    this.lastSample = this.sampler.sample(logits, 0, textVocab, this.history, this.rng)
    return { id: this.lastSample.id, complete: slot === 0 }
  }

  /** Records a generated block and works out text, logprobs and whether the sequence ended. */
  accept(ids: readonly number[]): SequenceOutput {
    const tokenId = ids[0] as number
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

  /** Drops the cache position count (the caller frees the cache): the next steps recompute every block. */
  resetComputed(): void {
    this.numComputed = 0
  }

  private outOfRoom(): boolean {
    return this.generatedIds.length >= this.options.maxNewTokens || this.blocks.length >= this.model.config.llm.max_position_embeddings
  }

  private flushText(): string {
    return this.stopMatcher.push(this.detokenizer.finish()).text + this.stopMatcher.flush()
  }

  private logprobsFor(tokenId: number): TokenLogprob[] | undefined {
    const sample = this.lastSample
    if (this.options.sampling.topLogprobs === undefined || sample === undefined) return undefined
    const text = (id: number) => this.tokenizer.tokenText(id)
    return [{ id: tokenId, text: text(tokenId), logprob: sample.logprob as number, top: (sample.top ?? []).map((t) => ({ id: t.id, text: text(t.id), logprob: t.logprob })) }]
  }
}
