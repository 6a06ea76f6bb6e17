/**
 * Entry point of the engine worker thread: the only thread that loads
 * onnxruntime-node and runs the model, so a forward pass never blocks HTTP.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { EngineError } from '../engine/errors.js'
import { loadModel } from '../engine/model.js'
import type { HostToWorker, WorkerOptions, WorkerToHost } from './protocol.js'

const port = parentPort
if (port === null) throw new Error('engine-worker.ts must run in a worker thread')
const post = (message: WorkerToHost) => port.postMessage(message)
const options = workerData as WorkerOptions

try {
  const model = await loadModel(options.modelDir, {
    executionProviders: options.executionProviders,
    ...(options.intraOpThreads === undefined ? {} : { intraOpThreads: options.intraOpThreads }),
  })
  port.on('message', (message: HostToWorker) => {
    if (message.type === 'shutdown') void model.dispose().then(() => port.close())
  })
  post({ type: 'ready', model: { name: model.config.name, maxContext: model.config.llm.max_position_embeddings, dir: model.dir } })
} catch (err) {
  const code = err instanceof EngineError ? err.code : 'ENGINE_START_FAILED'
  post({ type: 'failed', error: { code, message: (err as Error).message } })
}
