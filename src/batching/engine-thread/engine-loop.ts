/**
 * The engine loop, inside the worker: schedule → run the model → apply the
 * results, one step at a time, with new requests and aborts taken between
 * steps. Each step ends with one message carrying every sequence's news.
 *
 *   submit ─► preparePrompt (template, images) ─► engine.add + scheduler.add (one sequence per choice)
 *   loop:  expire deadlines ─► schedule() ─► preempt ─► engine.step(plan) ─► update() ─► post 'step'
 */
import { EngineError, type EngineErrorCode } from '../../engine/errors.js'
import type { Engine } from '../../engine/engine.js'
import type { TokenConstraint } from '../../engine/grammar/token-constraint.js'
import { validateSamplingParams } from '../../engine/sampling/index.js'
import type { FinishReason } from '../../engine/types.js'
import type { GenerateRequest, GenerationErrorCode, ImageRequest, StepRecord, TokenizeInput, Tokenized } from '../client-types.js'
import { ImageJobs } from './image-jobs.js'
import type { EngineStats, SequenceUpdate, StartedRequest, WorkerToHost } from '../protocol.js'
import type { Scheduler } from './scheduler/index.js'

const ERROR_CODES: Partial<Record<EngineErrorCode, GenerationErrorCode>> = {
  IMAGE_EMPTY: 'invalid_image',
  IMAGE_UNSUPPORTED_FORMAT: 'invalid_image',
  IMAGE_DECODE_FAILED: 'invalid_image',
  IMAGE_TOO_LARGE: 'image_too_large',
  PROMPT_TEMPLATE_FAILED: 'invalid_prompt',
  PROMPT_IMAGE_MISMATCH: 'invalid_prompt',
  PROMPT_TOKENS_INVALID: 'invalid_prompt',
  CONTEXT_LENGTH_EXCEEDED: 'context_length_exceeded',
  INVALID_SAMPLING: 'invalid_sampling',
  RESPONSE_FORMAT_INVALID: 'invalid_response_format',
  IMAGE_GENERATION_UNSUPPORTED: 'image_generation_unsupported',
}

/** An engine failure as its stable generation code and message. */
function refusal(err: unknown): { code: GenerationErrorCode; message: string } {
  const code = err instanceof EngineError ? (ERROR_CODES[err.code] ?? 'engine_failed') : 'engine_failed'
  return { code, message: (err as Error).message }
}

/** Sequence id of choice `choice` of request `reqId`. */
const seqId = (reqId: string, choice: number) => `${reqId}#${choice}`

function parseSeqId(id: string): { reqId: string; choice: number } {
  const at = id.lastIndexOf('#')
  return { reqId: id.slice(0, at), choice: Number(id.slice(at + 1)) }
}

/** The requests of sequences running for the first time, each once, with the prefix-cache hit of its first such sequence. */
function startedRequests(firstRun: ReadonlyArray<{ id: string; cachedBlocks?: number }>): StartedRequest[] {
  const started = new Map<string, StartedRequest>()
  for (const s of firstRun) {
    const { reqId } = parseSeqId(s.id)
    if (!started.has(reqId)) started.set(reqId, { reqId, cachedTokens: s.cachedBlocks ?? 0 })
  }
  return [...started.values()]
}

/** Post token-phase progress every this many blocks (and at the end). */
const TOKEN_PROGRESS_EVERY = 8

export class EngineLoop {
  private readonly requests = new Map<string, number>()
  /** Image requests: the seed of each image, the partial images each should send, the guidance scale. */
  private readonly imageRequests = new Map<string, { seeds: number[]; partialImages: number; guidance: number | undefined }>()
  private readonly images: ImageJobs
  private wake: (() => void) | undefined
  private stopped = false
  /** Aborts that arrived while a step ran; applied at the next boundary. */
  private pendingAborts: string[] = []
  private stepping = false

  constructor(
    private readonly engine: Engine,
    private readonly scheduler: Scheduler,
    private readonly post: (message: WorkerToHost, transfer?: ArrayBuffer[]) => void,
    private readonly beat: () => void,
  ) {
    this.images = new ImageJobs(engine, post)
  }

  /** Builds the prompt and queues one sequence per choice; answers `admitted` or `rejected`. */
  async submit(reqId: string, request: GenerateRequest, arrivalTime: number): Promise<void> {
    let constraints: Array<TokenConstraint | undefined> = []
    try {
      validateSamplingParams(request.sampling)
      const prompt = request.prompt === undefined ? await this.engine.preparePrompt(request.messages, { addGenerationPrompt: true }) : this.engine.preparePlainPrompt(request.prompt)
      const promptTokens = prompt.blocks.length
      const maxNewTokens = this.maxNewTokens(request, promptTokens, prompt.imagePositions)
      const promptFrom = this.promptSource(reqId, promptTokens)
      // Every choice's grammar before any choice is added: nothing may run before `admitted` is posted.
      constraints = await this.constraintsFor(request)
      for (let choice = 0; choice < request.n; choice++) {
        const sampling = request.sampling.seed === undefined ? request.sampling : { ...request.sampling, seed: request.sampling.seed + choice }
        const constraint = constraints[choice]
        constraints[choice] = undefined // the engine owns it from here, also when `add` throws
        // The prompt is reported once, by the first choice.
        const echo = choice === 0 && request.echo !== undefined ? { echo: request.echo } : {}
        this.engine.add(seqId(reqId, choice), prompt, { sampling, maxNewTokens, stop: request.stop, stopTokenIds: [], ...(constraint === undefined ? {} : { constraint }), ...echo })
        this.schedule(seqId(reqId, choice), promptTokens, maxNewTokens, arrivalTime, request, choice === 0 ? undefined : promptFrom)
      }
      this.requests.set(reqId, request.n)
      this.post({ type: 'admitted', reqId, promptTokens, imagePositions: prompt.imagePositions, images: prompt.images })
      this.wake?.()
    } catch (err) {
      for (const c of constraints) c?.dispose()
      this.reject(reqId, err)
    }
  }

  /** One grammar state per choice when the request has a response format (all or none: one that fails frees the others). */
  private async constraintsFor(request: GenerateRequest): Promise<Array<TokenConstraint | undefined>> {
    const format = request.responseFormat
    if (format === undefined) return []
    const made = await Promise.allSettled(Array.from({ length: request.n }, () => this.engine.constraintFor(format)))
    const failed = made.find((m) => m.status === 'rejected')
    if (failed === undefined) return made.map((m) => (m as PromiseFulfilledResult<TokenConstraint>).value)
    for (const m of made) if (m.status === 'fulfilled') m.value.dispose()
    throw failed.reason
  }

  /** Builds the image prompt and queues one grammar-constrained sequence per image. */
  async submitImage(reqId: string, request: ImageRequest, arrivalTime: number): Promise<void> {
    try {
      const generation = this.engine.model.imageDecoder?.config.image_generation
      if (generation === undefined) throw new EngineError('IMAGE_GENERATION_UNSUPPORTED', 'the model has no image decoder')
      validateSamplingParams(request.sampling)
      const prompt = await this.engine.preparePrompt([{ role: 'user', content: request.prompt }], { addGenerationPrompt: true })
      const grid = generation.grid
      const tokens = this.engine.imageGrammarLength(grid)
      const base = request.sampling.seed ?? Math.floor(Math.random() * 2 ** 31)
      const seeds = Array.from({ length: request.n }, (_, i) => base + i)
      const promptFrom = this.promptSource(reqId, prompt.blocks.length + 1)
      for (const [index, seed] of seeds.entries()) {
        this.engine.addImageGeneration(seqId(reqId, index), prompt, { sampling: { ...request.sampling, seed }, grid })
        // One more than the grammar: <|vision_end|> still needs its forward pass (its hidden state ends the span).
        this.schedule(seqId(reqId, index), prompt.blocks.length + 1, tokens + 1, arrivalTime, request, index === 0 ? undefined : promptFrom)
      }
      this.requests.set(reqId, request.n)
      this.imageRequests.set(reqId, { seeds, partialImages: request.partialImages ?? 0, guidance: request.guidance })
      this.post({ type: 'admitted', reqId, promptTokens: prompt.blocks.length + 1, imagePositions: 0, images: [] })
      this.wake?.()
    } catch (err) {
      this.reject(reqId, err)
    }
  }

  /** The prompt's positions (the first id of each) as `submit` would lay them out, or the refusal `submit` would give. */
  async tokenize(input: TokenizeInput): Promise<Tokenized | { code: GenerationErrorCode; message: string }> {
    try {
      const prompt = 'prompt' in input ? this.engine.preparePlainPrompt(input.prompt) : await this.engine.preparePrompt(input.messages, { addGenerationPrompt: input.addGenerationPrompt })
      return { ids: Array.from({ length: prompt.blocks.length }, (_, i) => prompt.blocks.firstId(i)), imagePositions: prompt.imagePositions }
    } catch (err) {
      return refusal(err)
    }
  }

  /** Text ids back to text (special tokens included). */
  detokenize(ids: readonly number[]): { text: string } | { code: GenerationErrorCode; message: string } {
    try {
      this.engine.checkTextIds(ids)
      return { text: this.engine.tokenizer.decode(ids) }
    } catch (err) {
      return refusal(err)
    }
  }

  /** The sequence whose computed prompt the request's other choices take from the prefix cache, when they can. */
  private promptSource(reqId: string, promptLength: number): string | undefined {
    return this.engine.canReusePrompt(promptLength) ? seqId(reqId, 0) : undefined
  }

  /** Queues one sequence with the scheduler, with the request's priority and deadline. */
  private schedule(id: string, promptLength: number, maxNewTokens: number, arrivalTime: number, request: { priority?: number; timeoutMs?: number }, promptFrom?: string): void {
    this.scheduler.add({
      id,
      promptLength,
      maxNewTokens,
      priority: request.priority ?? 0,
      arrivalTime,
      ...(request.timeoutMs === undefined ? {} : { deadline: arrivalTime + request.timeoutMs }),
      ...(promptFrom === undefined ? {} : { promptFrom }),
    })
  }

  /** Answers a request that could not be prepared, with the stable code of its error. */
  private reject(reqId: string, err: unknown): void {
    this.post({ type: 'rejected', reqId, ...refusal(err) })
  }

  /** The request's token budget, or a CONTEXT_LENGTH_EXCEEDED error with the numbers. */
  private maxNewTokens(request: GenerateRequest, promptTokens: number, imagePositions: number): number {
    const context = this.engine.model.config.llm.max_position_embeddings
    if (request.maxPromptTokens !== undefined && promptTokens > request.maxPromptTokens) {
      throw new EngineError('CONTEXT_LENGTH_EXCEEDED', `The prompt has ${promptTokens} tokens (${imagePositions} of them image positions); this server accepts at most ${request.maxPromptTokens}. Please reduce the length of the messages.`)
    }
    const maxNewTokens = request.maxNewTokens ?? Math.min(context - promptTokens, request.maxNewTokensLimit ?? Number.POSITIVE_INFINITY)
    // 0 only when asked for (a prompt to score): a prompt that fills the context leaves no room for a default.
    if (promptTokens + maxNewTokens > context || maxNewTokens < (request.maxNewTokens === 0 ? 0 : 1)) {
      throw new EngineError(
        'CONTEXT_LENGTH_EXCEEDED',
        `This model's maximum context length is ${context} tokens. However, you requested ${promptTokens + Math.max(1, maxNewTokens)} tokens (${promptTokens} in the messages, ${Math.max(1, maxNewTokens)} in the completion). Please reduce the length of the messages or completion.`,
      )
    }
    return maxNewTokens
  }

  /** Ends every choice of a request at this step boundary and frees its cache. */
  abort(reqId: string): void {
    if (this.stepping) {
      this.pendingAborts.push(reqId)
      return
    }
    this.images.cancel(reqId)
    const n = this.requests.get(reqId)
    if (n === undefined) return
    for (let choice = 0; choice < n; choice++) {
      this.scheduler.abort(seqId(reqId, choice))
      this.engine.release(seqId(reqId, choice))
    }
    this.requests.delete(reqId)
    this.imageRequests.delete(reqId)
    this.images.cancel(reqId)
    this.scheduler.takeFinished()
    this.postGauges()
  }

  /** Keeps the running/waiting/KV gauges true when no step reports them. */
  private postGauges(): void {
    this.post({ type: 'gauges', running: this.scheduler.numRunning, waiting: this.scheduler.numWaiting, kvUsage: this.scheduler.kvUsage() })
  }

  stats(): EngineStats {
    return {
      running: this.scheduler.numRunning,
      waiting: this.scheduler.numWaiting,
      kvUsage: this.scheduler.kvUsage(),
      kvSequences: this.engine.kv.sequences,
      engineSequences: this.engine.size,
      denoiseJobs: this.images.pending,
    }
  }

  stop(): void {
    this.stopped = true
    this.wake?.()
  }

  /** Runs until `stop()`; idles without spinning when there is no work. */
  async run(): Promise<void> {
    while (!this.stopped) {
      this.beat()
      if (!this.scheduler.hasWork() && this.images.pending === 0) {
        this.postGauges()
        await new Promise<void>((resolve) => {
          this.wake = resolve
        })
        this.wake = undefined
        continue
      }
      this.stepping = true
      try {
        // One engine step, then one denoise step: neither kind of work waits long for the other.
        if (this.scheduler.hasWork()) await this.step()
        await this.images.step()
      } finally {
        this.stepping = false
      }
      for (const reqId of this.pendingAborts.splice(0)) this.abort(reqId)
      // Let submits and aborts in between steps.
      await new Promise<void>((resolve) => setImmediate(resolve))
    }
  }

  private async step(): Promise<void> {
    const started = performance.now()
    const updates: SequenceUpdate[] = []
    for (const id of this.scheduler.expire(Date.now())) updates.push(this.end(id, 'timeout'))
    const prefixBefore = { ...this.engine.prefixStats }
    const maskMsBefore = this.engine.timings.maskMs
    const plan = this.scheduler.schedule()
    for (const id of plan.preempted) this.engine.preempt(id)
    const firstRun = plan.scheduled.filter((s) => this.engine.get(s.id)?.numComputed === 0 && (this.scheduler.get(s.id)?.numPreemptions ?? 0) === 0)
    let outputs: Awaited<ReturnType<Engine['step']>> = new Map()
    if (plan.scheduled.length > 0) {
      try {
        outputs = await this.engine.step(plan.scheduled.map((s) => ({ id: s.id, numBlocks: s.numBlocks, cachedBlocks: s.cachedBlocks })))
      } catch (err) {
        this.failAll(err as Error)
        return
      }
    }
    const results = plan.scheduled.map((s) => {
      const out = outputs.get(s.id)
      return { id: s.id, sampled: out?.sampled ?? false, ...(out?.finishReason === undefined ? {} : { finished: out.finishReason }) }
    })
    const ended = new Set(this.scheduler.update(results))
    let constrainedRows = 0
    for (const s of plan.scheduled) {
      const out = outputs.get(s.id)
      if (out?.sampled === true && this.engine.get(s.id)?.constraint !== undefined) constrainedRows++
      let reason: SequenceUpdate['finishReason'] = ended.has(s.id) ? (out?.finishReason ?? 'length') : undefined
      if (out?.failure !== undefined) {
        console.error(`sequence ${s.id} failed: ${out.failure}`)
        reason = 'error'
      }
      if (this.imageRequests.has(parseSeqId(s.id).reqId)) {
        this.imageTokenProgress(s.id, reason)
        continue
      }
      if (out !== undefined && (out.tokenIds.length > 0 || reason !== undefined)) {
        const { reqId, choice } = parseSeqId(s.id)
        updates.push({ reqId, choice, text: out.text, tokenIds: out.tokenIds, logprobs: out.logprobs, finishReason: reason, ...(out.prompt === undefined ? {} : { prompt: out.prompt }) })
      }
      if (reason !== undefined) this.release(s.id)
    }
    this.scheduler.takeFinished()
    const record: StepRecord = {
      durationMs: performance.now() - started,
      batchSize: plan.scheduled.length,
      batchedTokens: plan.numBatchedBlocks,
      running: this.scheduler.numRunning,
      waiting: this.scheduler.numWaiting,
      kvUsage: this.scheduler.kvUsage(),
      preemptions: plan.preempted.length,
      prefixQueriedPositions: this.engine.prefixStats.queriedPositions - prefixBefore.queriedPositions,
      prefixHitPositions: this.engine.prefixStats.reusedPositions - prefixBefore.reusedPositions,
      constrainedRows,
      maskMs: this.engine.timings.maskMs - maskMsBefore,
    }
    this.post({ type: 'step', updates, started: startedRequests(firstRun), record })
  }

  /** An image sequence's step: progress now and then; at its end, the denoise job starts. */
  private imageTokenProgress(id: string, reason: string | undefined): void {
    const seq = this.engine.get(id)
    const { reqId, choice } = parseSeqId(id)
    if (seq === undefined) return
    const done = seq.generatedIds.length
    const total = seq.options.grammar?.length ?? done
    if (done % TOKEN_PROGRESS_EVERY === 0 || reason !== undefined) this.post({ type: 'imageProgress', reqId, index: choice, phase: 'tokens', step: done, total })
    if (reason === undefined) return
    const image = this.imageRequests.get(reqId)
    if (reason === 'stop' && seq.capture !== undefined) this.images.start(reqId, choice, seq.capture.states, { seed: image?.seeds[choice] ?? 0, partialImages: image?.partialImages ?? 0, guidance: image?.guidance })
    else this.post({ type: 'imageFailed', reqId, message: `the token phase ended with ${reason}` })
    this.release(id)
  }

  /** The update for a sequence the scheduler ended on its own (deadline). */
  private end(id: string, reason: 'timeout'): SequenceUpdate {
    this.release(id)
    const { reqId, choice } = parseSeqId(id)
    if (this.imageRequests.has(reqId)) {
      this.images.cancel(reqId)
      this.post({ type: 'imageFailed', reqId, message: 'The request ran past its time limit.' })
    }
    return { reqId, choice, text: '', tokenIds: [], logprobs: undefined, finishReason: reason }
  }

  private release(id: string): void {
    this.engine.release(id)
    const { reqId } = parseSeqId(id)
    const left = (this.requests.get(reqId) ?? 1) - 1
    if (left > 0) {
      this.requests.set(reqId, left)
      return
    }
    this.requests.delete(reqId)
    this.imageRequests.delete(reqId)
  }

  /** A model run failed: every sequence ends with an error, the cache is emptied. */
  private failAll(err: Error): void {
    const updates: SequenceUpdate[] = []
    for (const [reqId, n] of this.requests) {
      for (let choice = 0; choice < n; choice++) {
        this.scheduler.abort(seqId(reqId, choice))
        this.engine.release(seqId(reqId, choice))
        updates.push({ reqId, choice, text: '', tokenIds: [], logprobs: undefined, finishReason: 'error' satisfies FinishReason | 'error' })
      }
    }
    this.requests.clear()
    this.scheduler.takeFinished()
    console.error(`engine step failed: ${err.message}`)
    this.post({ type: 'step', updates, started: [], record: { durationMs: 0, batchSize: 0, batchedTokens: 0, running: 0, waiting: 0, kvUsage: 0, preemptions: 0, prefixQueriedPositions: 0, prefixHitPositions: 0, constrainedRows: 0, maskMs: 0 } })
  }
}
