/**
 * The HTTP thread's handle on the engine worker: starts it, waits until the
 * model is loaded, and stops it. Imports no engine code (onnxruntime-node is
 * never loaded on this thread).
 */
import { Worker } from 'node:worker_threads'
import type { HostToWorker, ModelInfo, WorkerOptions, WorkerToHost } from './protocol.js'

export class EngineStartError extends Error {
  override readonly name = 'EngineStartError'
  constructor(readonly code: string, message: string) {
    super(message)
  }
}

/** The worker module beside this one: `.ts` when running from sources, `.js` when built. */
function workerUrl(): URL {
  const extension = import.meta.url.endsWith('.ts') ? '.ts' : '.js'
  return new URL(`./engine-worker${extension}`, import.meta.url)
}

export class EngineHost {
  private stopped = false

  private constructor(
    private readonly worker: Worker,
    readonly model: ModelInfo,
  ) {}

  /** Starts a worker and resolves once its model is loaded; rejects with the worker's error. */
  static start(options: WorkerOptions): Promise<EngineHost> {
    const worker = new Worker(workerUrl(), { workerData: options })
    return new Promise((resolve, reject) => {
      const onExit = (code: number) => reject(new EngineStartError('ENGINE_EXITED', `engine worker exited with code ${code} before the model loaded`))
      worker.once('error', reject)
      worker.once('exit', onExit)
      worker.on('message', (message: WorkerToHost) => {
        if (message.type === 'ready') {
          worker.off('exit', onExit)
          worker.off('error', reject)
          resolve(new EngineHost(worker, message.model))
        } else if (message.type === 'failed') {
          worker.off('exit', onExit)
          void worker.terminate()
          reject(new EngineStartError(message.error.code, message.error.message))
        }
      })
    })
  }

  /** True while the worker is up and has not been asked to stop. */
  get ready(): boolean {
    return !this.stopped
  }

  /** Asks the worker to release the model and exit; idempotent. */
  async close(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()))
    this.worker.postMessage({ type: 'shutdown' } satisfies HostToWorker)
    await exited
  }
}
