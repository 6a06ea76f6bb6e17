/**
 * What the engine loop needs from the engine, and nothing more. The real
 * `Engine` is a `LoopEngine` as it is; image requests also need an
 * `ImagePainter` (the denoiser and the VAE, ./image-jobs.ts builds the real one
 * from the model's image decoder). Tests drive the loop's chat and image flows
 * with fakes of both (test/batching/fixtures/fake-loop-engine.ts).
 */
import type { PlannedRow, PreparedPrompt, PrefixStats, StepOutput } from '../../engine/engine.js'
import type { TokenConstraint } from '../../engine/grammar/token-constraint.js'
import type { ImageGenerationConfig } from '../../engine/model-config.js'
import type { SequenceOptions, SpanCapture } from '../../engine/sequence.js'
import type { ChatMessage, ResponseFormat } from '../../engine/types.js'

/** What the loop reads of one of the engine's sequences. */
export interface LoopSequence {
  /** Blocks in the KV cache. */
  readonly numComputed: number
  readonly generatedIds: readonly number[]
  /** The response format's grammar state, when the answer is constrained. */
  readonly constraint: TokenConstraint | undefined
  /** Image generation: the span's hidden states, filled as its positions are computed. */
  readonly capture: SpanCapture | undefined
  /** Image generation: the blocks the token phase writes. */
  readonly options: { readonly grammar?: readonly unknown[] }
}

export interface LoopEngine {
  /** The model's context, positions. */
  readonly contextLength: number
  readonly tokenizer: { decode(ids: readonly number[]): string }
  /** Since construction; the loop reports each step's share. */
  readonly prefixStats: Readonly<PrefixStats>
  readonly timings: { readonly maskMs: number }
  /** Sequences holding KV cache entries (leak checks). */
  readonly kv: { readonly sequences: number }
  /** Sequences the engine knows (leak checks). */
  readonly size: number
  preparePrompt(messages: readonly ChatMessage[], opts: { addGenerationPrompt: boolean }): Promise<PreparedPrompt>
  preparePlainPrompt(prompt: { text: string } | { ids: readonly number[] }): PreparedPrompt
  checkTextIds(ids: readonly number[]): void
  constraintFor(format: ResponseFormat): Promise<TokenConstraint>
  /** Owns `options.constraint` from the call on, also when it throws. */
  add(id: string, prompt: PreparedPrompt, options: SequenceOptions): void
  addImageGeneration(
    id: string,
    prompt: PreparedPrompt,
    options: Pick<SequenceOptions, 'sampling'> & { grid: number },
  ): void
  imageGrammarLength(grid: number): number
  canReusePrompt(promptLength: number): boolean
  get(id: string): LoopSequence | undefined
  step(plan: readonly PlannedRow[]): Promise<Map<string, StepOutput>>
  preempt(id: string): void
  /** Forgets a sequence and frees its cache; idempotent. */
  release(id: string): void
}

/** One image being denoised, as the loop follows it. */
export interface Denoising {
  readonly steps: number
  readonly stepIndex: number
  readonly done: boolean
  /** The image latents once `done`. */
  readonly latents: Float32Array
  /** The sampler's current guess of the clean latents (after the first step). */
  cleanEstimate(): Float32Array | undefined
}

/** The image side of the model: span hidden states → denoised latents → PNGs. */
export interface ImagePainter {
  readonly config: ImageGenerationConfig
  /** A denoise job for the span of a finished token phase. */
  start(span: Float32Array, seed: number, guidance: number | undefined): Denoising
  /** One denoise step for every job, batched. */
  step(jobs: readonly Denoising[]): Promise<void>
  /** Latents → PNGs, one VAE call for all. */
  pngs(latents: readonly Float32Array[]): Promise<Uint8Array[]>
}
