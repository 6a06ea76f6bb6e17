/**
 * The HTTP thread's EngineClient: admission, the worker's messages turned into
 * per-request event streams, timings and metrics records, drain and close.
 *
 *   submit ─► admission.reserve (before any image is touched) ─► worker 'submit'
 *          ◄─ 'admitted' (prompt built) | 'rejected' (typed error, nothing streamed)
 *   'step' ─► each request's EventQueue: deltas, finish per choice, done
 */
import { randomUUID } from 'node:crypto'
import { availableParallelism } from 'node:os'
import type { ErrorCode } from '../../errors/catalog.js'
import {
  type EngineClient,
  type EngineObserver,
  type GenerateRequest,
  type Generation,
  type GenerationDefaults,
  type AdmissionTicket,
  type ImageCapabilities,
  type ImageGeneration,
  type ImageRequest,
  type TokenizeInput,
  type Tokenized,
} from '../client-types.js'
import { DEFAULT_LIMITS, limitsProblem, type LimitNames } from '../limits.js'
import { ImageRequestState } from './image-request-state.js'
import type {
  EngineStats,
  HostToWorker,
  ModelInfo,
  SchedulingLimits,
  SequenceUpdate,
  StartedRequest,
  WorkerToHost,
} from '../protocol.js'
import { RequestState } from './request-state.js'
import { AdmissionController, Reservation } from './admission.js'
import { WorkerSupervisor } from './worker-supervisor.js'
import { KelixError } from '../../errors/kelix-error.js'

export interface EngineClientOptions {
  modelDir: string
  /** Default `['cpu']`. */
  executionProviders?: Array<'cpu' | 'cuda' | 'webgpu'>
  /** Threads per ONNX operator. Default: one per core but one, which is left to the HTTP thread. */
  intraOpThreads?: number
  /** Default: DEFAULT_LIMITS (../limits.ts). A bad combination is refused at start, never corrected. */
  limits?: Partial<SchedulingLimits>
  /** How a refusal of the limits names them; default: their option names. */
  limitNames?: LimitNames
  /** Waiting requests before 429. Default 256. */
  maxWaiting?: number
  /** Waiting prompt blocks before 429. Default 65536. */
  maxWaitingTokens?: number
  /** Default 50 megapixels. */
  maxImagePixels?: number
  /** Prompt-prefix positions kept for reuse; 0 turns prefix caching off. Default 4096. */
  prefixCachePositions?: number
  /** Worker considered hung after this long without a loop turn. Default 30 s. */
  hungAfterMs?: number
  observer?: EngineObserver
  /** Where the engine's own events go (a failed step, a sequence ended in error, a worker that died); default: the console. */
  logger?: EngineLogger
}

/** The part of a pino logger the engine client writes to. */
export interface EngineLogger {
  error(fields: object, message: string): void
  warn(fields: object, message: string): void
}

const CONSOLE_LOGGER: EngineLogger = {
  error: (fields, message) => console.error(message, fields),
  warn: (fields, message) => console.warn(message, fields),
}

/** One core per ONNX operator thread, except one for the HTTP thread (measured: bench/results/serve.json). */
export function defaultIntraOpThreads(): number {
  return Math.max(1, availableParallelism() - 1)
}

/** How long `/tokenize` waits for the worker (it answers between steps; a step is far shorter). */
const ASK_TIMEOUT_MS = 30_000

export interface LocalEngineClient extends EngineClient {
  readonly model: ModelInfo
  /** Requests the HTTP thread still tracks. */
  readonly inFlight: number
  /** The worker's own counts, read between two steps. */
  engineStats(): Promise<EngineStats>
}

export async function startEngine(options: EngineClientOptions): Promise<LocalEngineClient> {
  const client = new WorkerEngineClient(options)
  await client.start()
  return client
}

class WorkerEngineClient implements LocalEngineClient {
  private supervisor: WorkerSupervisor | undefined
  private readonly admission: AdmissionController
  private readonly requests = new Map<string, RequestState | ImageRequestState>()
  private draining = false
  private closed = false
  private readonly statsWaiters = new Map<number, (stats: EngineStats) => void>()
  private readonly tokenizeWaiters = new Map<
    number,
    (result: Extract<WorkerToHost, { type: 'tokenized' }>['result']) => void
  >()
  private nextAskId = 0
  private readonly logger: EngineLogger

  constructor(private readonly options: EngineClientOptions) {
    this.logger = options.logger ?? CONSOLE_LOGGER
    this.admission = new AdmissionController({
      maxWaiting: options.maxWaiting ?? 256,
      maxWaitingTokens: options.maxWaitingTokens ?? 65_536,
    })
  }

  async start(): Promise<void> {
    const limits = { ...DEFAULT_LIMITS, ...this.options.limits }
    const limitNames = this.options.limitNames ?? {}
    // What can be checked before the model (and its context) is known; the worker checks the rest.
    const problem = limitsProblem(limits, undefined, limitNames)
    if (problem !== undefined) throw new KelixError('SCHEDULER_CONFIG_INVALID', problem)
    this.supervisor = await WorkerSupervisor.start({
      worker: {
        modelDir: this.options.modelDir,
        executionProviders: this.options.executionProviders ?? ['cpu'],
        intraOpThreads: this.options.intraOpThreads ?? defaultIntraOpThreads(),
        limits,
        limitNames,
        maxImagePixels: this.options.maxImagePixels ?? 50_000_000,
        prefixCachePositions: this.options.prefixCachePositions ?? 4096,
      },
      hungAfterMs: this.options.hungAfterMs ?? 30_000,
      restart: true,
      onMessage: (message) => this.onMessage(message),
      onDown: (reason) => this.onWorkerDown(reason),
      onUp: () => this.up(),
    })
    this.up()
  }

  private up(): void {
    this.options.observer?.engineUp(true)
    const provider = this.executionProvider
    if (provider !== undefined) this.options.observer?.executionProvider(provider)
  }

  get executionProvider(): string | undefined {
    return this.supervisor?.model.providers.inUse[0]
  }

  get model(): ModelInfo {
    return (this.supervisor as WorkerSupervisor).model
  }

  get maxContext(): number {
    return this.model.maxContext
  }

  get generationDefaults(): GenerationDefaults {
    return this.model.generation
  }

  get imageCapabilities(): ImageCapabilities | undefined {
    return this.model.images
  }

  /** Requests in flight (for drain and leak checks). */
  get inFlight(): number {
    return this.requests.size
  }

  ready(): boolean {
    return !this.draining && !this.closed && (this.supervisor?.isUp ?? false)
  }

  reserve(estimate: { textBytes: number; images: number }): AdmissionTicket {
    return this.admit(this.tokensFor(estimate.textBytes, estimate.images)).reservation
  }

  async submit(
    request: GenerateRequest,
    opts: { signal?: AbortSignal; ticket?: AdmissionTicket } = {},
  ): Promise<Generation> {
    const { supervisor, reservation } =
      opts.ticket instanceof Reservation && opts.ticket.status === 'reserved'
        ? this.withTicket(opts.ticket)
        : this.admit(this.estimateTokens(request))
    const state = new RequestState(request.n, reservation, this.options.observer, request.responseFormat !== undefined)
    const abort = await this.track(state, opts.signal, (reqId) => {
      const { request: portable, transfer } = portableRequest(request)
      supervisor.post({ type: 'submit', reqId, request: portable, arrivalTime: Date.now() }, transfer)
    })
    return { promptTokens: state.promptTokens, imagePositions: state.imagePositions, events: state.queue, abort }
  }

  async generateImages(request: ImageRequest, opts: { signal?: AbortSignal } = {}): Promise<ImageGeneration> {
    const images = this.model.images
    if (images === undefined)
      throw new KelixError(
        'model_capability_missing',
        `The model '${this.model.name}' does not generate images: its export has no image decoder (dit.onnx, vae_decoder.onnx).`,
        { param: 'model' },
      )
    const { supervisor, reservation } = this.admit(this.tokensFor(request.prompt.length, 0))
    const state = new ImageRequestState(request.n, images.tokensPerImage, reservation, this.options.observer)
    const abort = await this.track(state, opts.signal, (reqId) =>
      supervisor.post({ type: 'submitImage', reqId, request, arrivalTime: Date.now() }),
    )
    return { promptTokens: state.promptTokens, usage: state.usage, events: state.queue, abort }
  }

  /**
   * Registers a request, hands it to the worker, and waits until it is admitted
   * (or throws its refusal). Returns the abort function, also wired to `signal`.
   */
  private async track(
    state: RequestState | ImageRequestState,
    signal: AbortSignal | undefined,
    send: (reqId: string) => void,
  ): Promise<() => void> {
    const reqId = randomUUID()
    this.requests.set(reqId, state)
    try {
      send(reqId)
    } catch (err) {
      state.rejectWith(
        new KelixError('invalid_image', `The request could not be handed to the engine: ${(err as Error).message}`),
      )
    }
    try {
      await state.admitted
    } catch (err) {
      this.requests.delete(reqId)
      throw err
    }
    const abort = () => this.abort(reqId)
    state.onEnd = () => {
      signal?.removeEventListener('abort', abort)
      this.requests.delete(reqId)
    }
    if (signal?.aborted) abort()
    else signal?.addEventListener('abort', abort, { once: true })
    return abort
  }

  tokenize(input: TokenizeInput): Promise<Tokenized> {
    return this.ask((askId) => ({ type: 'tokenize', askId, input })).then((result) => result as Tokenized)
  }

  detokenize(ids: number[]): Promise<string> {
    return this.ask((askId) => ({ type: 'detokenize', askId, ids })).then((result) => (result as { text: string }).text)
  }

  /** One question to the worker; its refusal is the KelixError, no answer in time is engine_unavailable. */
  private ask(message: (askId: number) => HostToWorker): Promise<Tokenized | { text: string }> {
    const supervisor = this.supervisor
    if (supervisor === undefined || this.draining)
      return Promise.reject(new KelixError(this.draining ? 'draining' : 'engine_unavailable'))
    const askId = this.nextAskId++
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.tokenizeWaiters.delete(askId)
        reject(new KelixError('engine_unavailable', 'the engine did not answer in time'))
      }, ASK_TIMEOUT_MS)
      this.tokenizeWaiters.set(askId, (result) => {
        clearTimeout(timer)
        if ('error' in result) reject(KelixError.fromWire(result.error))
        else resolve(result)
      })
      supervisor.post(message(askId))
    })
  }

  engineStats(): Promise<EngineStats> {
    const askId = this.nextAskId++
    return new Promise((resolve) => {
      this.statsWaiters.set(askId, resolve)
      this.supervisor?.post({ type: 'stats', askId })
    })
  }

  async drain(timeoutMs: number): Promise<void> {
    this.draining = true
    this.admission.startDraining()
    const deadline = Date.now() + timeoutMs
    while (this.requests.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
    await this.close()
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const state of this.requests.values())
      state.fail(new KelixError('engine_unavailable', 'The server shut down before the request finished.'))
    this.requests.clear()
    await this.supervisor?.close()
    this.options.observer?.engineUp(false)
  }

  /** A ticket from `reserve`: the place is held already; the engine must still be up. */
  private withTicket(reservation: Reservation) {
    const supervisor = this.supervisor
    if (this.draining || this.closed || supervisor === undefined || !supervisor.isUp) {
      reservation.release()
      throw this.reject(
        this.draining || this.closed ? 'draining' : 'engine_unavailable',
        'The engine is not accepting requests; retry shortly.',
        1,
      )
    }
    return { supervisor, reservation }
  }

  /** A place in the waiting queue, or the typed refusal (before anything else is done). */
  private admit(estimatedTokens: number) {
    const supervisor = this.supervisor
    if (this.draining || this.closed)
      throw this.reject('draining', 'The server is shutting down; retry on another instance.', 1)
    if (supervisor === undefined || !supervisor.isUp)
      throw this.reject('engine_unavailable', 'The engine is restarting; retry shortly.', 1)
    const reservation = this.admission.reserve(estimatedTokens)
    if (!reservation.ok)
      throw this.reject(
        reservation.reason,
        `The server is overloaded (${reservation.reason.replace(/_/g, ' ')}); retry later.`,
        reservation.retryAfterSeconds,
      )
    return { supervisor, reservation }
  }

  private abort(reqId: string): void {
    const state = this.requests.get(reqId)
    if (state === undefined) return
    this.requests.delete(reqId)
    state.aborted()
    this.supervisor?.post({ type: 'abort', reqId })
  }

  private onMessage(message: WorkerToHost): void {
    if (message.type === 'admitted') this.requests.get(message.reqId)?.admit(message)
    else if (message.type === 'rejected')
      this.requests.get(message.reqId)?.rejectWith(KelixError.fromWire(message.error))
    else if (message.type === 'step') this.onStep(message.updates, message.started, message)
    else if (
      message.type === 'imageProgress' ||
      message.type === 'imagePartial' ||
      message.type === 'image' ||
      message.type === 'imageFailed'
    )
      this.onImageMessage(message)
    else if (message.type === 'gauges') this.options.observer?.gauges(message)
    else if (message.type === 'log') logWorkerLine(this.logger, message)
    else if (message.type === 'tokenized') {
      this.tokenizeWaiters.get(message.askId)?.(message.result)
      this.tokenizeWaiters.delete(message.askId)
    } else if (message.type === 'stats') {
      this.statsWaiters.get(message.askId)?.(message.stats)
      this.statsWaiters.delete(message.askId)
    }
  }

  private onImageMessage(
    message: Extract<WorkerToHost, { type: 'imageProgress' | 'imagePartial' | 'image' | 'imageFailed' }>,
  ): void {
    const state = this.requests.get(message.reqId)
    if (!(state instanceof ImageRequestState)) return
    if (message.type === 'imageProgress') state.progress(message)
    else if (message.type === 'imagePartial') state.partial(message)
    else if (message.type === 'image') state.image(message)
    else state.fail(KelixError.fromWire(message.error))
  }

  private onStep(
    updates: SequenceUpdate[],
    started: StartedRequest[],
    message: Extract<WorkerToHost, { type: 'step' }>,
  ): void {
    this.options.observer?.step(message.record)
    for (const { reqId, cachedTokens } of started) {
      const state = this.requests.get(reqId)
      if (state instanceof RequestState) state.started(cachedTokens)
    }
    for (const update of updates) {
      const state = this.requests.get(update.reqId)
      if (!(state instanceof RequestState)) continue
      state.update(update)
    }
  }

  private onWorkerDown(reason: string): void {
    this.logger.error({ engine: 'worker', inFlight: this.requests.size }, reason)
    this.options.observer?.engineUp(false)
    for (const state of this.requests.values())
      state.fail(new KelixError('engine_failed', `The engine stopped while generating (${reason}).`))
    this.requests.clear()
  }

  private reject(code: ErrorCode, message: string, retryAfterSeconds: number): KelixError {
    this.options.observer?.requestRejected(code)
    return new KelixError(code, message, { retryAfterSeconds })
  }

  /** Prompt blocks before the prompt exists: text at ~3 bytes a token, images at their largest. */
  private estimateTokens(request: GenerateRequest): number {
    let textBytes =
      request.prompt === undefined
        ? 0
        : 'text' in request.prompt
          ? request.prompt.text.length
          : 3 * request.prompt.ids.length
    let images = 0
    for (const m of request.messages) {
      if (typeof m.content === 'string') textBytes += m.content.length
      else {
        for (const part of m.content) {
          if (part.type === 'text') textBytes += part.text.length
          else images++
        }
      }
    }
    return this.tokensFor(textBytes, images)
  }

  private tokensFor(textBytes: number, images: number): number {
    return Math.ceil(textBytes / 3) + images * this.model.maxImagePositions + 16
  }
}

/** The worker's log line, written to the host's logger (fields first, as pino takes them). */
export function logWorkerLine(logger: EngineLogger, line: Extract<WorkerToHost, { type: 'log' }>): void {
  logger[line.level]({ engine: 'worker', ...line.fields }, line.message)
}

/**
 * A copy of the request whose image bytes sit in buffers of their own, listed
 * for transfer: a Buffer from a pool must never be transferred (it would
 * detach the pool), so such bytes are copied once here.
 */
function portableRequest(request: GenerateRequest): { request: GenerateRequest; transfer: ArrayBuffer[] } {
  const transfer = new Set<ArrayBuffer>()
  const messages = request.messages.map((m) => {
    if (typeof m.content === 'string') return m
    const content = m.content.map((part) => {
      if (part.type !== 'image') return part
      const bytes = ownsBuffer(part.image.bytes) ? part.image.bytes : new Uint8Array(part.image.bytes)
      transfer.add(bytes.buffer as ArrayBuffer)
      return { ...part, image: { ...part.image, bytes } }
    })
    return { ...m, content }
  })
  return { request: { ...request, messages }, transfer: [...transfer] }
}

/** True when `bytes` spans a whole, non-shared ArrayBuffer, which can move to the worker as it is. */
function ownsBuffer(bytes: Uint8Array): boolean {
  // Zero bytes may mean an already-transferred (detached) buffer: copy, and let the engine refuse the empty image.
  return (
    bytes.byteLength > 0 &&
    !(bytes.buffer instanceof SharedArrayBuffer) &&
    bytes.byteOffset === 0 &&
    bytes.byteLength === bytes.buffer.byteLength
  )
}
