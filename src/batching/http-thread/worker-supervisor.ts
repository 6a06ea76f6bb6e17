/**
 * Keeps one engine worker alive: starts it, watches its heartbeat, and starts
 * a new one when it crashes or hangs. Imports no engine code (onnxruntime-node
 * is never loaded on this thread).
 *
 *   start ─► worker 'ready' ─► up ──crash / exit / heartbeat stale──► down ─► onDown() ─► start again
 */
import { Worker } from 'node:worker_threads'
import { KelixError } from '../../errors/kelix-error.js'
import type { HostToWorker, ModelInfo, WorkerOptions, WorkerToHost } from '../protocol.js'

export interface SupervisorOptions {
  worker: Omit<WorkerOptions, 'heartbeat'>
  /** A worker whose loop has not turned for this long is considered hung and replaced. */
  hungAfterMs: number
  /** Start a new worker after a crash or hang. */
  restart: boolean
  onMessage: (message: WorkerToHost) => void
  /** The worker died or hung; everything it held is lost. */
  onDown: (reason: string) => void
  onUp?: () => void
}

/**
 * A new Worker running ../engine-thread/engine-worker: `.js` when
 * built. From sources (`.ts`) under tsx, whose loader does not reach workers,
 * a small bootstrap registers tsx in the worker first; test runners whose
 * loaders do reach workers (tap) load the `.ts` module directly.
 */
function newWorker(workerData: WorkerOptions): Worker {
  if (!import.meta.url.endsWith('.ts'))
    return new Worker(new URL('../engine-thread/engine-worker.js', import.meta.url), { workerData })
  const url = new URL('../engine-thread/engine-worker.ts', import.meta.url)
  if (!process.execArgv.some((arg) => arg.includes('tsx'))) return new Worker(url, { workerData })
  const bootstrap = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(url.href)}) })`
  return new Worker(bootstrap, { eval: true, workerData, execArgv: [] })
}

export class WorkerSupervisor {
  private worker: Worker | undefined
  private readonly watchdog: NodeJS.Timeout
  private closing = false
  private up = false

  private constructor(
    private readonly options: SupervisorOptions,
    readonly model: ModelInfo,
    /** Where every worker writes the time of its loop's last turn (shared across restarts). */
    private readonly heartbeat: BigInt64Array,
  ) {
    this.watchdog = setInterval(() => this.checkHeartbeat(), Math.min(1000, options.hungAfterMs))
    this.watchdog.unref()
  }

  /** Starts the first worker; rejects with the loader's error when the model cannot load. */
  static async start(options: SupervisorOptions): Promise<WorkerSupervisor> {
    const heartbeat = new BigInt64Array(new SharedArrayBuffer(8))
    const { worker, model } = await spawn(options.worker, heartbeat)
    const supervisor = new WorkerSupervisor(options, model, heartbeat)
    supervisor.adopt(worker)
    return supervisor
  }

  get isUp(): boolean {
    return this.up && !this.closing
  }

  /** Time since the worker's loop last turned, ms. */
  heartbeatAgeMs(): number {
    return Date.now() - Number(Atomics.load(this.heartbeat, 0))
  }

  post(message: HostToWorker, transfer: ArrayBuffer[] = []): void {
    this.worker?.postMessage(message, transfer)
  }

  /** Asks the worker to release the model and exit; kills it after `graceMs`. Idempotent. */
  async close(graceMs = 5000): Promise<void> {
    if (this.closing) return
    this.closing = true
    this.up = false
    clearInterval(this.watchdog)
    const worker = this.worker
    if (worker === undefined) return
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()))
    worker.postMessage({ type: 'shutdown' } satisfies HostToWorker)
    const timer = setTimeout(() => void worker.terminate(), graceMs)
    await exited
    clearTimeout(timer)
  }

  private adopt(worker: Worker): void {
    this.worker = worker
    this.up = true
    worker.on('message', (message: WorkerToHost) => this.options.onMessage(message))
    worker.once('exit', (code) => {
      if (this.worker === worker) this.worker = undefined
      if (!this.closing) this.down(`engine worker exited with code ${code}`)
    })
    worker.on('error', (err) => {
      if (!this.closing) this.down(`engine worker crashed: ${err.message}`)
    })
  }

  private checkHeartbeat(): void {
    if (!this.up || this.closing) return
    const age = this.heartbeatAgeMs()
    if (age > this.options.hungAfterMs) {
      const worker = this.worker
      this.down(`engine worker hung: no heartbeat for ${age} ms`)
      void worker?.terminate()
    }
  }

  private down(reason: string): void {
    if (!this.up) return
    this.up = false
    this.options.onDown(reason)
    if (this.options.restart && !this.closing) void this.restart()
  }

  private async restart(): Promise<void> {
    try {
      const { worker } = await spawn(this.options.worker, this.heartbeat)
      if (this.closing) {
        await worker.terminate()
        return
      }
      this.adopt(worker)
      this.options.onUp?.()
    } catch (err) {
      this.options.onDown(`engine worker failed to restart: ${(err as Error).message}`)
    }
  }
}

function spawn(
  options: SupervisorOptions['worker'],
  heartbeat: BigInt64Array,
): Promise<{ worker: Worker; model: ModelInfo }> {
  const worker = newWorker({ ...options, heartbeat: heartbeat.buffer as SharedArrayBuffer })
  return new Promise((resolve, reject) => {
    const onExit = (code: number) =>
      reject(new KelixError('ENGINE_START_FAILED', `engine worker exited with code ${code} before the model loaded`))
    const onMessage = (message: WorkerToHost) => {
      if (message.type === 'ready') {
        cleanup()
        resolve({ worker, model: message.model })
      } else if (message.type === 'failed') {
        cleanup()
        void worker.terminate()
        reject(KelixError.fromWire(message.error))
      }
    }
    const cleanup = () => {
      worker.off('exit', onExit)
      worker.off('error', reject)
      worker.off('message', onMessage)
    }
    worker.once('error', reject)
    worker.once('exit', onExit)
    worker.on('message', onMessage)
  })
}
