/**
 * The narrow interface the API layer sees of the engine: submit a request,
 * read a stream of events, abort. Plain data, no engine imports: routes depend
 * on this file only.
 *
 *   const gen = await engine.submit(request, { signal })   // admission, images, prompt: all done here
 *   for await (const event of gen.events) { … }            // deltas, then one finish per choice
 *
 * `submit` rejects with a `KelixError` (stable `code`) before anything is
 * streamed: queue full, draining, bad image, context overflow. Only a failure
 * after that (the engine died) arrives as an `error` event.
 */
import type { ErrorCode } from '../errors/catalog.js'
import type { KelixError } from '../errors/kelix-error.js'
import type {
  ChatMessage,
  EchoedPrompt,
  FinishReason,
  ResponseFormat,
  SamplingParams,
  TokenLogprob,
} from '../engine/types.js'

export type {
  ChatMessage,
  ContentPart,
  EchoedPrompt,
  EchoedToken,
  FinishReason,
  ImageDetail,
  ImageInput,
  ResponseFormat,
  SamplingParams,
  TokenLogprob,
} from '../engine/types.js'

/** A completions prompt: text tokenized as it is (no chat template), or token ids. */
export type PlainPrompt = { text: string } | { ids: number[] }

export interface GenerateRequest {
  /** Chat turns, rendered with the model's template; ignored when `prompt` is given. */
  messages: ChatMessage[]
  /** The prompt as it is (completions). */
  prompt?: PlainPrompt
  /** Choices to generate from the one prompt. */
  n: number
  sampling: SamplingParams
  /** Blocks (tokens) to generate at most per choice; undefined: the rest of the context (capped by `maxNewTokensLimit`). */
  maxNewTokens?: number
  /** Cap on the default `maxNewTokens` (the server's max tokens, the model's generation default). */
  maxNewTokensLimit?: number
  /** Most prompt positions (images included) this request may have; refused at submit past it. */
  maxPromptTokens?: number
  /** Up to 4 stop strings. */
  stop: string[]
  /** Higher runs first; default 0. */
  priority?: number
  /** Longest time the request may spend, start to finish, in ms. */
  timeoutMs?: number
  /** Every choice constrained to this format, token by token. */
  responseFormat?: ResponseFormat
  /** Report the prompt back (a `prompt` event), with this many alternatives per token when `logprobs` is set. */
  echo?: { logprobs: number | undefined }
}

export interface Usage {
  /** Prompt positions, image positions included. */
  promptTokens: number
  /** Of those, positions taken from the prefix cache instead of computed. */
  cachedPromptTokens: number
  /** Generated blocks over all choices. */
  completionTokens: number
  totalTokens: number
}

export interface RequestTimings {
  /** Time spent waiting for a place in the batch, ms. */
  queueMs: number
  /** Time from submit to the first token of the first choice, ms. */
  firstTokenMs: number | undefined
  /** Submit to finish, ms. */
  totalMs: number
}

export type GenerationEvent =
  | { type: 'delta'; choice: number; text: string; tokenIds: number[]; logprobs: TokenLogprob[] | undefined }
  | { type: 'finish'; choice: number; reason: FinishReason }
  /** The prompt, when `echo` asked for it: before any delta. */
  | ({ type: 'prompt' } & EchoedPrompt)
  | { type: 'done'; usage: Usage; timings: RequestTimings }
  | { type: 'error'; error: KelixError }

export interface Generation {
  /** Known once `submit` resolves. */
  promptTokens: number
  imagePositions: number
  /** Deltas (coalesced when the reader is slow), one `finish` per choice, then `done` — or one `error`. */
  events: AsyncIterable<GenerationEvent>
  /** Stops generating (the client left); idempotent. */
  abort(): void
}

/** Text-to-image: the prompt goes through the chat template, the model writes an image grid, the DiT and VAE paint it. */
export interface ImageRequest {
  prompt: string
  /** Images from the one prompt. */
  n: number
  /** Token-phase sampling (temperature 1 by default); image i uses seed + i. */
  sampling: SamplingParams
  timeoutMs?: number
  /** Partial images per image, sent while it denoises (0–3, like OpenAI's `partial_images`). Default 0. */
  partialImages?: number
  /** Classifier-free guidance scale of the denoiser. Default: the model's `image_generation.guidance`. */
  guidance?: number
}

export type ImageEvent =
  | { type: 'progress'; index: number; phase: 'tokens' | 'denoise'; step: number; total: number }
  /** The sampler's current guess of image `index`, `partialIndex` of the partial images asked for. */
  | { type: 'partial'; index: number; partialIndex: number; png: Uint8Array }
  | { type: 'image'; index: number; png: Uint8Array }
  | { type: 'done'; usage: ImageUsage; timings: RequestTimings }
  | { type: 'error'; error: KelixError }

export interface ImageUsage {
  promptTokens: number
  /** Blocks the token phases write, over all images. */
  imageTokens: number
  totalTokens: number
}

export interface ImageGeneration {
  promptTokens: number
  /** What the request uses once every image is done (known at admission: the grammar fixes each image's blocks). */
  usage: ImageUsage
  /** Progress events, one `image` per index, then `done` — or one `error`. */
  events: AsyncIterable<ImageEvent>
  abort(): void
}

/** What the served model can paint. */
export interface ImageCapabilities {
  /** Output width = height, pixels. */
  size: number
  /** Positions per side of the generated grid. */
  grid: number
  /** Blocks the token phase writes per image. */
  tokensPerImage: number
  denoiseSteps: number
}

/**
 * The model's defaults for what a request does not say (config.json
 * `generation`, as vLLM takes a model's generation_config.json): the routes
 * fill a text request's omitted sampling fields, and cap its default
 * max tokens, with them.
 */
export interface GenerationDefaults {
  /** Cap on the blocks a request without max tokens gets (else the rest of the context). */
  maxNewTokens: number
  temperature: number
  topP: number
  /** 0: no top-k filter. */
  topK: number
}

/** A place in the waiting queue, taken before any slow work (image downloads); release it if the request is dropped. */
export interface AdmissionTicket {
  release(): void
}

export interface EngineClient {
  /**
   * Takes a place in the waiting queue for a request of about this size, or
   * throws the refusal (429/503) at once. Pass the ticket to `submit`.
   */
  reserve(estimate: { textBytes: number; images: number }): AdmissionTicket
  /** Generates `n` images from a text prompt; admission and the prompt are done before it resolves. */
  generateImages(request: ImageRequest, opts?: { signal?: AbortSignal }): Promise<ImageGeneration>
  /** What image generation the model offers; undefined when its export has no image decoder. */
  readonly imageCapabilities: ImageCapabilities | undefined
  /**
   * Admits, prepares and queues a request. Image bytes that own their whole
   * ArrayBuffer move to the engine thread (transferred, not copied): the
   * caller's arrays are detached afterwards.
   */
  submit(request: GenerateRequest, opts?: { signal?: AbortSignal; ticket?: AdmissionTicket }): Promise<Generation>
  /** The prompt's positions as the engine lays them out; a bad prompt is the KelixError `submit` would give. */
  tokenize(input: TokenizeInput): Promise<Tokenized>
  /** Text token ids back to text; an id outside the text vocabulary is `invalid_prompt`. */
  detokenize(ids: number[]): Promise<string>
  /** Model loaded, engine loop alive (fresh heartbeat), not draining. */
  ready(): boolean
  /** The served model's context length in positions. */
  readonly maxContext: number
  /** The served model's defaults for what a request leaves out. */
  readonly generationDefaults: GenerationDefaults
  /** The execution provider the graphs run on (`cpu`, `cuda`, `webgpu`); undefined while the engine is down. */
  readonly executionProvider: string | undefined
  /** Stops admitting (503), lets running requests finish, then resolves. */
  drain(timeoutMs: number): Promise<void>
  /** Ends everything now: in-flight requests get an `error` event. */
  close(): Promise<void>
}

/** What `/tokenize` counts: a plain prompt, or chat turns through the template (images included). */
export type TokenizeInput = { prompt: PlainPrompt } | { messages: ChatMessage[]; addGenerationPrompt: boolean }

export interface Tokenized {
  /** The first id of each position: the token of a text position, the first code of an image position. */
  ids: number[]
  /** Of the positions, those an image takes. */
  imagePositions: number
}

/** One finished request, as metrics see it. */
export interface RequestRecord {
  /** 'stop' | 'length' for completed requests; 'abort', 'error', 'timeout' otherwise. */
  finishReason: FinishReason | 'abort' | 'error' | 'timeout'
  promptTokens: number
  completionTokens: number
  imagePositions: number
  queueMs: number
  firstTokenMs: number | undefined
  totalMs: number
  /** Gaps between consecutive tokens of each choice, ms. */
  interTokenMs: number[]
  /** Whether its choices were constrained to a response format. */
  constrained: boolean
}

/** One engine step, as metrics see it. */
export interface StepRecord {
  durationMs: number
  /** Sequences in the step. */
  batchSize: number
  /** Blocks computed in the step (decodes plus prefill chunks). */
  batchedTokens: number
  running: number
  waiting: number
  /** KV cache in use, 0..1. */
  kvUsage: number
  preemptions: number
  /** Prompt positions of newly admitted sequences looked up in the prefix cache this step. */
  prefixQueriedPositions: number
  /** Of those, positions filled from the cache instead of computed. */
  prefixHitPositions: number
  /** Rows of the step whose sampled id a response grammar constrained, and the time their masks took (ms). */
  constrainedRows: number
  maskMs: number
}

/**
 * What the engine reports for metrics, called on the HTTP thread. The engine
 * side never imports prom-client; the server turns these calls into metrics.
 */
export interface EngineObserver {
  requestFinished(record: RequestRecord): void
  /** A request refused before it ran: queue_full, queue_tokens_full, draining, invalid_image, … */
  requestRejected(code: ErrorCode): void
  step(record: StepRecord): void
  /** The queue gauges between steps (the loop went idle, or a request left without a step). */
  gauges(state: Pick<StepRecord, 'running' | 'waiting' | 'kvUsage'>): void
  /** An image request whose client went away before its images came (counted with the chat aborts). */
  imageRequestAborted(): void
  /** One image request finished (all its images delivered). */
  imageRequestFinished(record: { images: number; imageTokens: number; totalMs: number; denoiseStepMs: number[] }): void
  image(record: { preprocessMs: number; tokenizeMs: number; cacheHit: boolean }): void
  /** The engine loop's heartbeat and liveness (1 up, 0 down). */
  engineUp(up: boolean): void
  /** The execution provider the engine's graphs run on, each time the engine (re)starts. */
  executionProvider(provider: string): void
}
