/**
 * Messages between the HTTP thread and the engine worker. Plain data only:
 * structured clone carries them, and neither side imports the other.
 */

/** What the API layer needs to know about the loaded model. */
export interface ModelInfo {
  /** config.json `name`. */
  name: string
  /** Context length in blocks (LLM positions). */
  maxContext: number
  /** Loaded from here. */
  dir: string
}

export interface WorkerOptions {
  modelDir: string
  executionProviders: Array<'cpu' | 'cuda' | 'webgpu'>
  intraOpThreads: number | undefined
}

export type WorkerToHost =
  | { type: 'ready'; model: ModelInfo }
  | { type: 'failed'; error: { code: string; message: string } }
  | { type: 'heartbeat'; at: number }

export type HostToWorker = { type: 'shutdown' }
