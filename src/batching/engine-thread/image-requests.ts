/**
 * Image requests in the worker, from submit to their last PNG:
 *
 *   submit ─► prompt + <|vision_start|> ─► one grammar-constrained sequence per image (the scheduler batches them with chat)
 *   token phase: progress every few blocks ─► its end: the span's hidden states become a denoise job (./image-jobs.ts)
 *   between engine steps: one batched denoise step ─► done: VAE ─► PNG ─► 'image'
 *
 * A request ends once: every image delivered, or one `imageFailed` (a token
 * phase that did not end with its grammar, a deadline, a failed denoise, a
 * failed engine step), after which nothing of it is left in the engine, the
 * scheduler or the denoiser.
 */
import { KelixError } from '../../errors/kelix-error.js'
import { newTokenBudget } from '../../engine/context-length.js'
import { validateSamplingParams } from '../../engine/sampling/index.js'
import type { ImageRequest } from '../client-types.js'
import type { SequenceUpdate, WorkerToHost } from '../protocol.js'
import { ImageJobs } from './image-jobs.js'
import type { ImagePainter, LoopEngine } from './loop-engine.js'
import { parseSeqId, seqId, type RequestSequences } from './request-sequences.js'

/** Post token-phase progress every this many blocks (and at the end). */
const TOKEN_PROGRESS_EVERY = 8

interface ImageRecord {
  /** The seed of each image. */
  seeds: number[]
  partialImages: number
  guidance: number | undefined
  /** Images not delivered yet. */
  left: number
}

type Post = (message: WorkerToHost, transfer?: ArrayBuffer[]) => void

export class ImageRequests {
  private readonly requests = new Map<string, ImageRecord>()
  private readonly jobs: ImageJobs | undefined

  constructor(
    private readonly engine: LoopEngine,
    /** Undefined for a chat-only export: every image request is refused. */
    private readonly painter: ImagePainter | undefined,
    private readonly sequences: RequestSequences,
    private readonly post: Post,
  ) {
    this.jobs =
      painter === undefined
        ? undefined
        : new ImageJobs(
            painter,
            (message, transfer) => {
              if (message.type === 'image') this.delivered(message.reqId)
              post(message, transfer)
            },
            (reqId, message) => this.fail(reqId, new KelixError('engine_failed', message)),
          )
  }

  has(reqId: string): boolean {
    return this.requests.has(reqId)
  }

  /** Images being denoised. */
  get denoising(): number {
    return this.jobs?.pending ?? 0
  }

  /**
   * Builds the image prompt, queues one sequence per image and posts
   * `admitted`; throws the refusal instead (nothing of the request is left
   * queued then).
   */
  async submit(reqId: string, request: ImageRequest, arrivalTime: number): Promise<void> {
    const generation = this.painter?.config
    if (generation === undefined)
      throw new KelixError('model_capability_missing', 'the model has no image decoder', { param: 'model' })
    validateSamplingParams(request.sampling)
    const prompt = await this.engine.preparePrompt([{ role: 'user', content: request.prompt }], {
      addGenerationPrompt: true,
    })
    const grid = generation.grid
    // The token phase computes the prompt and <|vision_start|>, then writes the grammar's blocks and computes <|vision_end|> too.
    const promptLength = prompt.blocks.length + 1
    const maxNewTokens = newTokenBudget({
      context: this.engine.contextLength,
      promptTokens: promptLength,
      requested: this.engine.imageGrammarLength(grid) + 1,
    })
    const base = request.sampling.seed ?? Math.floor(Math.random() * 2 ** 31)
    const seeds = Array.from({ length: request.n }, (_, i) => base + i)
    const promptFrom = this.sequences.promptSource(reqId, promptLength)
    try {
      for (const [index, seed] of seeds.entries()) {
        this.engine.addImageGeneration(seqId(reqId, index), prompt, { sampling: { ...request.sampling, seed }, grid })
        this.sequences.queue(
          reqId,
          index,
          { promptLength, maxNewTokens },
          arrivalTime,
          request,
          index === 0 ? undefined : promptFrom,
        )
      }
    } catch (err) {
      this.sequences.drop(reqId)
      throw err
    }
    this.requests.set(reqId, {
      seeds,
      partialImages: request.partialImages ?? 0,
      guidance: request.guidance,
      left: request.n,
    })
    this.post({ type: 'admitted', reqId, promptTokens: promptLength, imagePositions: 0, images: [] })
  }

  /**
   * One step's news for one of the token-phase sequences: progress now and
   * then; at the end of the phase its denoise job starts, unless the phase
   * ended short of its grammar (the request then fails).
   */
  tokenStep(id: string, reason: SequenceUpdate['finishReason']): void {
    const { reqId, choice } = parseSeqId(id)
    const image = this.requests.get(reqId)
    const seq = this.engine.get(id)
    if (image === undefined || seq === undefined) return
    const done = seq.generatedIds.length
    const total = seq.options.grammar?.length ?? done
    if (done % TOKEN_PROGRESS_EVERY === 0 || reason !== undefined)
      this.post({ type: 'imageProgress', reqId, index: choice, phase: 'tokens', step: done, total })
    if (reason === undefined) return
    if (reason !== 'stop' || seq.capture === undefined || this.jobs === undefined) {
      this.fail(
        reqId,
        new KelixError(reason === 'timeout' ? 'timeout' : 'engine_failed', `the token phase ended with ${reason}`),
      )
      return
    }
    this.jobs.start(reqId, choice, seq.capture.states, {
      seed: image.seeds[choice] ?? 0,
      partialImages: image.partialImages,
      guidance: image.guidance,
    })
    this.sequences.release(id)
  }

  /** One denoise step for every image being denoised. */
  denoiseStep(): Promise<void> {
    return this.jobs?.step() ?? Promise.resolve()
  }

  /** Ends a request with its one `imageFailed`: its sequences and denoise jobs go. Does nothing for a request already ended. */
  fail(reqId: string, error: KelixError): void {
    if (!this.end(reqId)) return
    this.post({ type: 'imageFailed', reqId, error: error.toWire() })
  }

  /** Fails every request, in whatever phase (a failed engine step). */
  failAll(error: KelixError): void {
    for (const reqId of [...this.requests.keys()]) this.fail(reqId, error)
  }

  /** The client left: the request ends without a message. Returns whether it was in flight. */
  abort(reqId: string): boolean {
    return this.end(reqId)
  }

  private end(reqId: string): boolean {
    if (!this.requests.delete(reqId)) return false
    this.jobs?.cancel(reqId)
    this.sequences.drop(reqId)
    return true
  }

  private delivered(reqId: string): void {
    const image = this.requests.get(reqId)
    if (image !== undefined && --image.left === 0) this.requests.delete(reqId)
  }
}
