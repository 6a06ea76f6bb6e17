/**
 * The engine loop, inside the worker: schedule → run the model → apply the
 * results, one step at a time, with new requests and aborts taken between
 * steps. Each step ends with one message carrying every sequence's news.
 * Chat requests are the loop's own; image requests have their handler
 * (./image-requests.ts: token phase and denoising).
 *
 *   submit ─► preparePrompt (template, images) ─► engine.add + scheduler.add (one sequence per choice)
 *   loop:  expire deadlines ─► schedule() ─► preempt ─► engine.step(plan) ─► update() ─► post 'step'
 *          ─► one denoise step
 *
 * A step that throws ends every request in flight, chat or image, in any
 * phase, with one error each; the cause goes to the host's logger.
 */
import { newTokenBudget } from '../../engine/context-length.js'
import type { TokenConstraint } from '../../engine/grammar/token-constraint.js'
import { validateSamplingParams } from '../../engine/sampling/index.js'
import type { GenerateRequest, ImageRequest, StepRecord, TokenizeInput, Tokenized } from '../client-types.js'
import type { EngineStats, SequenceUpdate, StartedRequest, WorkerToHost } from '../protocol.js'
import { ImageRequests } from './image-requests.js'
import type { ImagePainter, LoopEngine } from './loop-engine.js'
import { parseSeqId, RequestSequences, seqId } from './request-sequences.js'
import type { Scheduler } from './scheduler/index.js'
import { asKelixError, KelixError, type WireError } from '../../errors/kelix-error.js'

/** A failure as the host gets it: the engine's own KelixError, or anything else as engine_failed. */
function refusal(err: unknown): { error: WireError } {
  return { error: asKelixError(err, 'engine_failed').toWire() }
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

/** The record of a step that failed: nothing ran. */
const FAILED_STEP: StepRecord = {
  durationMs: 0,
  batchSize: 0,
  batchedTokens: 0,
  running: 0,
  waiting: 0,
  kvUsage: 0,
  preemptions: 0,
  prefixQueriedPositions: 0,
  prefixHitPositions: 0,
  constrainedRows: 0,
  maskMs: 0,
}

type Post = (message: WorkerToHost, transfer?: ArrayBuffer[]) => void

export class EngineLoop {
  /** Every request's live sequences, chat and image. */
  private readonly sequences: RequestSequences
  private readonly images: ImageRequests
  private wake: (() => void) | undefined
  private stopped = false
  /** Aborts that arrived while a step ran; applied at the next boundary. */
  private pendingAborts: string[] = []
  private stepping = false

  constructor(
    private readonly engine: LoopEngine,
    private readonly scheduler: Scheduler,
    private readonly post: Post,
    private readonly beat: () => void,
    /** The model's image side; undefined: image requests are refused. */
    painter?: ImagePainter,
  ) {
    this.sequences = new RequestSequences(engine, scheduler)
    this.images = new ImageRequests(engine, painter, this.sequences, post)
  }

  /** Builds the prompt and queues one sequence per choice; answers `admitted` or `rejected`. */
  async submit(reqId: string, request: GenerateRequest, arrivalTime: number): Promise<void> {
    let constraints: Array<TokenConstraint | undefined> = []
    try {
      validateSamplingParams(request.sampling)
      const prompt =
        request.prompt === undefined
          ? await this.engine.preparePrompt(request.messages, { addGenerationPrompt: true })
          : this.engine.preparePlainPrompt(request.prompt)
      const promptTokens = prompt.blocks.length
      const maxNewTokens = newTokenBudget({
        context: this.engine.contextLength,
        promptTokens,
        imagePositions: prompt.imagePositions,
        requested: request.maxNewTokens,
        ...(request.maxNewTokensLimit === undefined ? {} : { defaultCap: request.maxNewTokensLimit }),
        ...(request.maxPromptTokens === undefined ? {} : { maxPromptTokens: request.maxPromptTokens }),
      })
      const promptFrom = this.sequences.promptSource(reqId, promptTokens)
      // Every choice's grammar before any choice is added: nothing may run before `admitted` is posted.
      constraints = await this.constraintsFor(request)
      for (let choice = 0; choice < request.n; choice++) {
        const sampling =
          request.sampling.seed === undefined
            ? request.sampling
            : { ...request.sampling, seed: request.sampling.seed + choice }
        const constraint = constraints[choice]
        constraints[choice] = undefined // the engine owns it from here, also when `add` throws
        // The prompt is reported once, by the first choice.
        const echo = choice === 0 && request.echo !== undefined ? { echo: request.echo } : {}
        this.engine.add(seqId(reqId, choice), prompt, {
          sampling,
          maxNewTokens,
          stop: request.stop,
          stopTokenIds: [],
          ...(constraint === undefined ? {} : { constraint }),
          ...echo,
        })
        this.sequences.queue(
          reqId,
          choice,
          { promptLength: promptTokens, maxNewTokens },
          arrivalTime,
          request,
          choice === 0 ? undefined : promptFrom,
        )
      }
      this.post({ type: 'admitted', reqId, promptTokens, imagePositions: prompt.imagePositions, images: prompt.images })
      this.wake?.()
    } catch (err) {
      for (const c of constraints) c?.dispose()
      // The choices queued before the one that failed go too.
      this.sequences.drop(reqId)
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

  /** Builds the image prompt and queues one grammar-constrained sequence per image (./image-requests.ts). */
  async submitImage(reqId: string, request: ImageRequest, arrivalTime: number): Promise<void> {
    try {
      await this.images.submit(reqId, request, arrivalTime)
      this.wake?.()
    } catch (err) {
      this.reject(reqId, err)
    }
  }

  /** The prompt's positions (the first id of each) as `submit` would lay them out, or the refusal `submit` would give. */
  async tokenize(input: TokenizeInput): Promise<Tokenized | { error: WireError }> {
    try {
      const prompt =
        'prompt' in input
          ? this.engine.preparePlainPrompt(input.prompt)
          : await this.engine.preparePrompt(input.messages, { addGenerationPrompt: input.addGenerationPrompt })
      return {
        ids: Array.from({ length: prompt.blocks.length }, (_, i) => prompt.blocks.firstId(i)),
        imagePositions: prompt.imagePositions,
      }
    } catch (err) {
      return refusal(err)
    }
  }

  /** Text ids back to text (special tokens included). */
  detokenize(ids: readonly number[]): { text: string } | { error: WireError } {
    try {
      this.engine.checkTextIds(ids)
      return { text: this.engine.tokenizer.decode(ids) }
    } catch (err) {
      return refusal(err)
    }
  }

  /** Answers a request that could not be prepared, with the stable code of its error. */
  private reject(reqId: string, err: unknown): void {
    this.post({ type: 'rejected', reqId, ...refusal(err) })
  }

  /** Ends every choice of a request at this step boundary and frees its cache. */
  abort(reqId: string): void {
    if (this.stepping) {
      this.pendingAborts.push(reqId)
      return
    }
    const ended = this.images.has(reqId) ? this.images.abort(reqId) : this.sequences.drop(reqId).length > 0
    if (ended) this.postGauges()
  }

  /** Keeps the running/waiting/KV gauges true when no step reports them. */
  private postGauges(): void {
    this.post({
      type: 'gauges',
      running: this.scheduler.numRunning,
      waiting: this.scheduler.numWaiting,
      kvUsage: this.scheduler.kvUsage(),
    })
  }

  stats(): EngineStats {
    return {
      running: this.scheduler.numRunning,
      waiting: this.scheduler.numWaiting,
      kvUsage: this.scheduler.kvUsage(),
      kvSequences: this.engine.kv.sequences,
      engineSequences: this.engine.size,
      denoiseJobs: this.images.denoising,
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
      if (!this.scheduler.hasWork() && this.images.denoising === 0) {
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
        await this.images.denoiseStep()
      } catch (err) {
        // Both catch their own failures; this is for a failure of that handling itself. The loop goes on.
        this.failAll(err, [])
      } finally {
        this.stepping = false
      }
      for (const reqId of this.pendingAborts.splice(0)) this.abort(reqId)
      // Let submits and aborts in between steps.
      await new Promise<void>((resolve) => setImmediate(resolve))
    }
  }

  /** One engine step; a failure anywhere in it fails every request in flight. */
  private async step(): Promise<void> {
    // Outlives a failure: updates already made (timeouts) still go out.
    const updates: SequenceUpdate[] = []
    try {
      await this.runStep(updates)
    } catch (err) {
      this.failAll(err, updates)
    }
  }

  private async runStep(updates: SequenceUpdate[]): Promise<void> {
    const started = performance.now()
    for (const id of this.scheduler.expire(Date.now())) this.expired(id, updates)
    const prefixBefore = { ...this.engine.prefixStats }
    const maskMsBefore = this.engine.timings.maskMs
    const plan = this.scheduler.schedule()
    for (const id of plan.preempted) this.engine.preempt(id)
    const firstRun = plan.scheduled.filter(
      (s) => this.engine.get(s.id)?.numComputed === 0 && (this.scheduler.get(s.id)?.numPreemptions ?? 0) === 0,
    )
    const outputs: Awaited<ReturnType<LoopEngine['step']>> =
      plan.scheduled.length > 0
        ? await this.engine.step(
            plan.scheduled.map((s) => ({ id: s.id, numBlocks: s.numBlocks, cachedBlocks: s.cachedBlocks })),
          )
        : new Map()
    const results = plan.scheduled.map((s) => {
      const out = outputs.get(s.id)
      return {
        id: s.id,
        sampled: out?.sampled ?? false,
        ...(out?.finishReason === undefined ? {} : { finished: out.finishReason }),
      }
    })
    const ended = new Set(this.scheduler.update(results))
    let constrainedRows = 0
    for (const s of plan.scheduled) {
      const out = outputs.get(s.id)
      if (out?.sampled === true && this.engine.get(s.id)?.constraint !== undefined) constrainedRows++
      let reason: SequenceUpdate['finishReason'] = ended.has(s.id) ? (out?.finishReason ?? 'length') : undefined
      if (out?.failure !== undefined) {
        this.log('error', `sequence ${s.id} failed: ${out.failure}`, { sequence: s.id })
        reason = 'error'
      }
      const { reqId, choice } = parseSeqId(s.id)
      if (this.images.has(reqId)) {
        this.images.tokenStep(s.id, reason)
        continue
      }
      if (out !== undefined && (out.tokenIds.length > 0 || reason !== undefined)) {
        updates.push({
          reqId,
          choice,
          text: out.text,
          tokenIds: out.tokenIds,
          logprobs: out.logprobs,
          finishReason: reason,
          ...(out.prompt === undefined ? {} : { prompt: out.prompt }),
        })
      }
      if (reason !== undefined) this.sequences.release(s.id)
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

  /** A sequence the scheduler ended at its deadline: a chat choice ends with 'timeout'; an image request fails whole. */
  private expired(id: string, updates: SequenceUpdate[]): void {
    const { reqId, choice } = parseSeqId(id)
    if (this.images.has(reqId)) {
      this.images.fail(reqId, new KelixError('timeout', 'The request ran past its time limit.'))
      return
    }
    this.sequences.release(id)
    updates.push({ reqId, choice, text: '', tokenIds: [], logprobs: undefined, finishReason: 'timeout' })
  }

  /**
   * A step failed: every request in flight ends with one error (each live chat
   * choice with 'error', each image request, in whichever phase, with one
   * `imageFailed`), the cache is emptied, and the scheduler is ready for the
   * next step. The cause goes to the host's log.
   */
  private failAll(err: unknown, updates: SequenceUpdate[]): void {
    const cause = err instanceof Error ? err : new Error(String(err))
    this.log('error', `engine step failed: ${cause.message}`, {
      error: cause.message,
      ...(cause.stack === undefined ? {} : { stack: cause.stack }),
    })
    this.images.failAll(new KelixError('engine_failed', `The engine failed while generating: ${cause.message}`))
    for (const reqId of this.sequences.requests()) {
      for (const choice of this.sequences.drop(reqId))
        updates.push({ reqId, choice, text: '', tokenIds: [], logprobs: undefined, finishReason: 'error' })
    }
    // Every sequence of the step in flight has ended: its update is empty.
    this.scheduler.update([])
    this.scheduler.takeFinished()
    this.post({ type: 'step', updates, started: [], record: FAILED_STEP })
  }

  /** A line for the host's logger (the worker has none of its own). */
  private log(level: 'error' | 'warn', message: string, fields: Record<string, string | number>): void {
    this.post({ type: 'log', level, message, fields })
  }
}
