/**
 * Messages between the HTTP thread and the engine worker. Plain data only:
 * structured clone carries them (image bytes are transferred, not copied),
 * and neither side imports the other's code.
 *
 *   host ──submit──► worker ──admitted | rejected──► host
 *   host ◄──step (every sequence's new tokens, one message per step)── worker
 *   host ──abort / drain / shutdown──► worker
 */
import type { WireError } from '../errors/kelix-error.js'
import type {
  GenerateRequest,
  GenerationDefaults,
  ImageCapabilities,
  ImageRequest,
  StepRecord,
  TokenizeInput,
  Tokenized,
} from './client-types.js'
import type { LimitNames } from './limits.js'
import type { EchoedPrompt, FinishReason, TokenLogprob } from '../engine/types.js'

/** What the API layer needs to know about the loaded model. */
export interface ModelInfo {
  /** config.json `name`. */
  name: string
  /** Context length in blocks (LLM positions). */
  maxContext: number
  /** Loaded from here. */
  dir: string
  /** Most positions one image can take (for admission estimates). */
  maxImagePositions: number
  /** Undefined for a chat-only export. */
  images: ImageCapabilities | undefined
  /** config.json `generation`: what a request that does not say gets. */
  generation: GenerationDefaults
  /** The execution providers in use (the first runs the graphs) and those skipped, with why. */
  providers: { inUse: string[]; skipped: Array<{ provider: string; reason: string }> }
}

export interface SchedulingLimits {
  /** Most sequences running at once (vLLM's max_num_seqs). */
  maxNumSeqs: number
  /** Most blocks per step, decodes and prefill chunks together. */
  maxBatchedTokens: number
  /** KV capacity in positions over all sequences; must hold the model's context (./limits.ts checks how the limits combine). */
  kvCapacity: number
  /** KV page size in positions. */
  pageSize: number
}

export interface WorkerOptions {
  modelDir: string
  executionProviders: Array<'cpu' | 'cuda' | 'webgpu'>
  intraOpThreads: number | undefined
  limits: SchedulingLimits
  /** How the worker's refusal of a bad combination of limits names them (the server: flags and variables). */
  limitNames: LimitNames
  maxImagePixels: number
  /** Positions of prompt prefixes the engine keeps for reuse; 0 turns prefix caching off. */
  prefixCachePositions: number
  /** Shared Int32/BigInt64 buffer where the worker writes the time (ms since epoch) of its last loop turn. */
  heartbeat: SharedArrayBuffer
}

export type HostToWorker =
  | { type: 'submit'; reqId: string; request: GenerateRequest; arrivalTime: number }
  | { type: 'submitImage'; reqId: string; request: ImageRequest; arrivalTime: number }
  | { type: 'abort'; reqId: string }
  | { type: 'stats'; askId: number }
  | { type: 'tokenize'; askId: number; input: TokenizeInput }
  | { type: 'detokenize'; askId: number; ids: number[] }
  | { type: 'shutdown' }

/** One sequence's news from one step. */
/** A request whose first sequence left the waiting queue this step. */
export interface StartedRequest {
  reqId: string
  /** Prompt positions that sequence took from the prefix cache instead of computing. */
  cachedTokens: number
}

export interface SequenceUpdate {
  reqId: string
  choice: number
  text: string
  tokenIds: number[]
  logprobs: TokenLogprob[] | undefined
  /** Set once, when the sequence ends. */
  finishReason: FinishReason | 'abort' | 'error' | 'timeout' | undefined
  /** The prompt, reported once it is computed, for a request with `echo`. */
  prompt?: EchoedPrompt
}

export type WorkerToHost =
  | { type: 'ready'; model: ModelInfo }
  | { type: 'failed'; error: WireError }
  | { type: 'admitted'; reqId: string; promptTokens: number; imagePositions: number; images: ImageStats[] }
  | { type: 'rejected'; reqId: string; error: WireError }
  | { type: 'step'; updates: SequenceUpdate[]; started: StartedRequest[]; record: StepRecord }
  | { type: 'stats'; askId: number; stats: EngineStats }
  | { type: 'tokenized'; askId: number; result: Tokenized | { text: string } | { error: WireError } }
  | { type: 'gauges'; running: number; waiting: number; kvUsage: number }
  | { type: 'imageProgress'; reqId: string; index: number; phase: 'tokens' | 'denoise'; step: number; total: number }
  | { type: 'imagePartial'; reqId: string; index: number; partialIndex: number; png: Uint8Array }
  | { type: 'image'; reqId: string; index: number; png: Uint8Array; denoiseStepMs: number[] }
  | { type: 'imageFailed'; reqId: string; error: WireError }
  /** A line for the host's logger: the worker has none (a failed step, a sequence ended in error). */
  | { type: 'log'; level: 'error' | 'warn'; message: string; fields: Record<string, string | number> }

/** The worker's bookkeeping, for leak checks: all zero when idle. */
export interface EngineStats {
  running: number
  waiting: number
  /** Scheduler's KV accounting, 0..1. */
  kvUsage: number
  /** Sequences holding cache entries in the KV store. */
  kvSequences: number
  /** Sequences the engine still knows. */
  engineSequences: number
  /** Images being denoised. */
  denoiseJobs: number
}

export interface ImageStats {
  preprocessMs: number
  tokenizeMs: number
  cacheHit: boolean
}
