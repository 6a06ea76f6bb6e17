/**
 * A fake EngineClient for tests of the HTTP layer: no model, no worker. Every
 * submit is a ChatCall the test can read (the GenerateRequest the route
 * built) and answer. By default a call is answered at once (`answer`); a test
 * that needs an order sets `onSubmit` to hold calls, then pushes events when
 * it has seen what it waits for (a chunk on the wire, a keep-alive).
 *
 *   const engine = new ScriptedEngineClient()
 *   engine.onSubmit = () => {}                 // hold every call
 *   const pending = post(…)
 *   const call = await engine.call(0)           // the route submitted
 *   call.answer(['Hel', 'lo'])                  // deltas, finish, done
 *
 * A KelixError thrown by `onSubmit` (or set as `refusal`) is submit's refusal.
 */
import type {
  AdmissionTicket,
  EngineClient,
  FinishReason,
  GenerateRequest,
  Generation,
  GenerationDefaults,
  GenerationEvent,
  ImageCapabilities,
  ImageEvent,
  ImageGeneration,
  ImageRequest,
  ImageUsage,
  RequestTimings,
  TokenizeInput,
  Tokenized,
  TokenLogprob,
} from '../../src/batching/client-types.js'
import { KelixError } from '../../src/errors/kelix-error.js'
import { EventQueue } from './event-queue.js'

export const TIMINGS: RequestTimings = { queueMs: 1, firstTokenMs: 2, totalMs: 3 }
/** What the fake paints: a 64×64 model, 16 blocks an image, 4 denoise steps. */
export const IMAGE_CAPABILITIES: ImageCapabilities = { size: 64, grid: 4, tokensPerImage: 16, denoiseSteps: 4 }
/** Stand-in image bytes (the routes pass them through as base64). */
export const FAKE_PNG = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

/** One engine call as the test sees it: the request, its events (fed by the test), and whether the route aborted it. */
class Call<Request, Event> {
  readonly events = new EventQueue<Event>()
  /** Resolves when the generation is aborted: the route's abort(), or the client left (the submit signal). */
  readonly aborted: Promise<void>
  wasAborted = false
  readonly abort: () => void

  constructor(
    readonly request: Request,
    signal: AbortSignal | undefined,
  ) {
    let resolve!: () => void
    this.aborted = new Promise((r) => (resolve = r))
    this.abort = () => {
      if (this.wasAborted) return
      this.wasAborted = true
      this.events.end()
      resolve()
    }
    if (signal?.aborted === true) this.abort()
    else signal?.addEventListener('abort', this.abort, { once: true })
  }

  push(...events: Event[]): void {
    this.events.push(...events)
  }

  end(): void {
    this.events.end()
  }
}

export class ChatCall extends Call<GenerateRequest, GenerationEvent> {
  /** What `submit` reports, and `answer`'s usage counts. */
  promptTokens = 10
  imagePositions = 0

  /** Every choice writes `pieces` (one token each), finishes with `finish`, then `done` with the usage; the events end. */
  answer(pieces: readonly string[], options: { finish?: FinishReason; cachedPromptTokens?: number } = {}): void {
    const { n, sampling } = this.request
    if (this.request.echo !== undefined)
      this.push({ type: 'prompt', text: promptText(this.request), logprobs: undefined })
    for (let choice = 0; choice < n; choice++) {
      pieces.forEach((text, i) =>
        this.push({
          type: 'delta',
          choice,
          text,
          tokenIds: [100 + i],
          logprobs: sampling.topLogprobs === undefined ? undefined : [logprob(100 + i, text, sampling.topLogprobs)],
        }),
      )
      this.push({ type: 'finish', choice, reason: options.finish ?? 'stop' })
    }
    const completionTokens = n * pieces.length
    this.done({
      promptTokens: this.promptTokens,
      cachedPromptTokens: options.cachedPromptTokens ?? 0,
      completionTokens,
      totalTokens: this.promptTokens + completionTokens,
    })
  }

  done(usage: Extract<GenerationEvent, { type: 'done' }>['usage']): void {
    this.push({ type: 'done', usage, timings: TIMINGS })
    this.end()
  }

  fail(error: KelixError): void {
    this.push({ type: 'error', error })
    this.end()
  }
}

export class ImageCall extends Call<ImageRequest, ImageEvent> {
  promptTokens = 10

  get usage(): ImageUsage {
    const imageTokens = this.request.n * IMAGE_CAPABILITIES.tokensPerImage
    return { promptTokens: this.promptTokens, imageTokens, totalTokens: this.promptTokens + imageTokens }
  }

  /** Each image: one token-phase and one denoise progress event, then the image; then done. */
  paint(): void {
    for (let index = 0; index < this.request.n; index++) {
      this.push({
        type: 'progress',
        index,
        phase: 'tokens',
        step: IMAGE_CAPABILITIES.tokensPerImage,
        total: IMAGE_CAPABILITIES.tokensPerImage,
      })
      this.push({
        type: 'progress',
        index,
        phase: 'denoise',
        step: IMAGE_CAPABILITIES.denoiseSteps,
        total: IMAGE_CAPABILITIES.denoiseSteps,
      })
      this.push({ type: 'image', index, png: FAKE_PNG })
    }
    this.push({ type: 'done', usage: this.usage, timings: TIMINGS })
    this.end()
  }
}

/** The text of a request's prompt, as the fake tokenizes it. */
function promptText(request: Pick<GenerateRequest, 'messages' | 'prompt'>): string {
  if (request.prompt !== undefined)
    return 'text' in request.prompt ? request.prompt.text : String.fromCodePoint(...request.prompt.ids)
  return request.messages
    .map((m) =>
      typeof m.content === 'string' ? m.content : m.content.map((p) => (p.type === 'text' ? p.text : '')).join(''),
    )
    .join('')
}

function logprob(id: number, text: string, top: number): TokenLogprob {
  const bytes = [...new TextEncoder().encode(text)]
  return {
    id,
    text,
    bytes,
    logprob: -0.5,
    top: Array.from({ length: top }, (_, i) => ({ id: id + i, text, bytes, logprob: -0.5 - i })),
  }
}

export interface ScriptedEngineOptions {
  /** Default: IMAGE_CAPABILITIES; undefined for a chat-only model. */
  imageCapabilities?: ImageCapabilities | undefined
  maxContext?: number
  generationDefaults?: GenerationDefaults
  executionProvider?: string
}

export class ScriptedEngineClient implements EngineClient {
  readonly calls: ChatCall[] = []
  readonly imageCalls: ImageCall[] = []
  /** Each reserve's estimate, in order. */
  readonly reservations: Array<{ textBytes: number; images: number }> = []
  /** Tickets taken and not released. */
  openTickets = 0
  /** What each submit does; default: answer 'Hello' ' there' and end. */
  onSubmit: (call: ChatCall) => void | Promise<void> = (call) => call.answer(['Hello', ' there'])
  /** What each generateImages does; default: paint every image at once. */
  onGenerateImages: (call: ImageCall) => void | Promise<void> = (call) => call.paint()
  /** When set, reserve, submit and generateImages refuse with it (429 and 503 tests). */
  refusal: KelixError | undefined
  /** The engine loop is alive (readiness). */
  up = true
  readonly imageCapabilities: ImageCapabilities | undefined
  readonly maxContext: number
  readonly generationDefaults: GenerationDefaults
  readonly executionProvider: string | undefined
  private draining = false
  private closed = false
  private readonly waiters = new Map<number, Array<(call: ChatCall) => void>>()

  constructor(options: ScriptedEngineOptions = {}) {
    this.imageCapabilities = 'imageCapabilities' in options ? options.imageCapabilities : IMAGE_CAPABILITIES
    this.maxContext = options.maxContext ?? 4096
    this.generationDefaults = options.generationDefaults ?? { maxNewTokens: 4096, temperature: 1, topP: 1, topK: 0 }
    this.executionProvider = options.executionProvider ?? 'cpu'
  }

  /** The `index`-th submit (from 0), once the route has made it. */
  call(index: number): Promise<ChatCall> {
    const made = this.calls[index]
    if (made !== undefined) return Promise.resolve(made)
    return new Promise((resolve) => this.waiters.set(index, [...(this.waiters.get(index) ?? []), resolve]))
  }

  reserve(estimate: { textBytes: number; images: number }): AdmissionTicket {
    this.reservations.push(estimate)
    this.checkAccepting()
    this.openTickets++
    let held = true
    return {
      release: () => {
        if (held) this.openTickets--
        held = false
      },
    }
  }

  async submit(
    request: GenerateRequest,
    opts: { signal?: AbortSignal; ticket?: AdmissionTicket } = {},
  ): Promise<Generation> {
    this.checkAccepting()
    const call = new ChatCall(request, opts.signal)
    this.calls.push(call)
    for (const resolve of this.waiters.get(this.calls.length - 1) ?? []) resolve(call)
    await this.onSubmit(call)
    // Admitted: the place in the queue becomes the request's, as the real client commits it.
    opts.ticket?.release()
    return {
      promptTokens: call.promptTokens,
      imagePositions: call.imagePositions,
      events: call.events,
      abort: call.abort,
    }
  }

  async generateImages(request: ImageRequest, opts: { signal?: AbortSignal } = {}): Promise<ImageGeneration> {
    this.checkAccepting()
    if (this.imageCapabilities === undefined) throw new KelixError('model_capability_missing')
    const call = new ImageCall(request, opts.signal)
    this.imageCalls.push(call)
    await this.onGenerateImages(call)
    return { promptTokens: call.promptTokens, usage: call.usage, events: call.events, abort: call.abort }
  }

  /** One position per code point of the prompt's text (images: 4 positions of id 0). */
  async tokenize(input: TokenizeInput): Promise<Tokenized> {
    this.checkAccepting()
    if ('prompt' in input) {
      const ids =
        'ids' in input.prompt ? input.prompt.ids : [...input.prompt.text].map((c) => c.codePointAt(0) as number)
      return { ids, imagePositions: 0 }
    }
    const ids: number[] = []
    let imagePositions = 0
    for (const m of input.messages) {
      for (const part of typeof m.content === 'string' ? [{ type: 'text' as const, text: m.content }] : m.content) {
        if (part.type === 'text') ids.push(...[...part.text].map((c) => c.codePointAt(0) as number))
        else {
          ids.push(0, 0, 0, 0)
          imagePositions += 4
        }
      }
    }
    return { ids, imagePositions }
  }

  async detokenize(ids: number[]): Promise<string> {
    this.checkAccepting()
    return String.fromCodePoint(...ids)
  }

  ready(): boolean {
    return this.up && !this.draining && !this.closed
  }

  /** Refuses new work at once; resolves when every open call has ended (or after `timeoutMs`), then closes. */
  async drain(timeoutMs: number): Promise<void> {
    this.draining = true
    let timer: NodeJS.Timeout | undefined
    const limit = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))
    await Promise.race([Promise.all([...this.calls, ...this.imageCalls].map((c) => c.events.whenEnded())), limit])
    clearTimeout(timer)
    await this.close()
  }

  /** Every open call gets the error the real client sends when it shuts down. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    const error = new KelixError('engine_unavailable', 'The server shut down before the request finished.')
    for (const call of this.calls) if (!call.events.isEnded) call.fail(error)
    for (const call of this.imageCalls) {
      call.push({ type: 'error', error })
      call.end()
    }
  }

  private checkAccepting(): void {
    if (this.refusal !== undefined) throw this.refusal
    if (this.draining || this.closed)
      throw new KelixError('draining', 'The server is shutting down; retry on another instance.', {
        retryAfterSeconds: 1,
      })
  }
}
