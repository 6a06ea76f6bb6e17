/**
 * Entry point of the engine worker thread: the only thread that loads
 * onnxruntime-node and runs the model, so a forward pass never blocks HTTP.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { Engine } from '../../engine/engine.js'
import { loadModel } from '../../engine/model.js'
import type { KelixConfig } from '../../engine/model-config.js'
import { EngineLoop } from './engine-loop.js'
import { decoderPainter } from './image-jobs.js'
import type { LoopEngine } from './loop-engine.js'
import type { GenerationDefaults, ImageCapabilities } from '../client-types.js'
import { limitsProblem } from '../limits.js'
import type { HostToWorker, WorkerOptions, WorkerToHost } from '../protocol.js'
import { Scheduler } from './scheduler/index.js'
import { asKelixError, KelixError } from '../../errors/kelix-error.js'

const port = parentPort
if (port === null) throw new Error('engine-worker.ts must run in a worker thread')
const post = (message: WorkerToHost, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer)
const options = workerData as WorkerOptions
const heartbeat = new BigInt64Array(options.heartbeat)
const beat = () => Atomics.store(heartbeat, 0, BigInt(Date.now()))

try {
  const model = await loadModel(options.modelDir, {
    executionProviders: options.executionProviders,
    ...(options.intraOpThreads === undefined ? {} : { intraOpThreads: options.intraOpThreads }),
  })
  const context = model.config.llm.max_position_embeddings
  // Named as the host names them (the server: flags and variables); the scheduler would refuse them too, by its option names.
  const problem = limitsProblem(options.limits, context, options.limitNames)
  if (problem !== undefined) throw new KelixError('SCHEDULER_CONFIG_INVALID', problem)
  const engine = new Engine(model, {
    maxImagePixels: options.maxImagePixels,
    prefixCachePositions: options.prefixCachePositions,
  })
  const scheduler = new Scheduler(
    { ...options.limits, maxModelLength: context },
    { prefixHit: (id) => engine.prefixHit(id) },
  )
  const loop = new EngineLoop(
    engine satisfies LoopEngine,
    scheduler,
    post,
    beat,
    model.imageDecoder === undefined ? undefined : decoderPainter(model.imageDecoder),
  )
  // While idle the loop waits on a promise; this timer keeps the heartbeat fresh meanwhile.
  const idleBeat = setInterval(beat, 1000)
  let running: Promise<void> = Promise.resolve()
  port.on('message', (message: HostToWorker) => {
    if (message.type === 'submit') void loop.submit(message.reqId, message.request, message.arrivalTime)
    else if (message.type === 'submitImage') void loop.submitImage(message.reqId, message.request, message.arrivalTime)
    else if (message.type === 'abort') loop.abort(message.reqId)
    else if (message.type === 'stats') post({ type: 'stats', askId: message.askId, stats: loop.stats() })
    else if (message.type === 'tokenize')
      void loop.tokenize(message.input).then((result) => post({ type: 'tokenized', askId: message.askId, result }))
    else if (message.type === 'detokenize')
      post({ type: 'tokenized', askId: message.askId, result: loop.detokenize(message.ids) })
    else if (message.type === 'shutdown') {
      loop.stop()
      clearInterval(idleBeat)
      // The step in flight finishes before the sessions go.
      void running.then(() => model.dispose()).then(() => port.close())
    }
  })
  beat()
  post({
    type: 'ready',
    model: {
      name: model.config.name,
      maxContext: context,
      dir: model.dir,
      maxImagePositions: model.config.vision.max_positions,
      images: imageCapabilities(engine),
      generation: generationDefaults(model.config),
      providers: model.providers,
    },
  })
  running = loop.run()
  await running
} catch (err) {
  post({ type: 'failed', error: asKelixError(err, 'ENGINE_START_FAILED').toWire() })
}

function imageCapabilities(engine: Engine): ImageCapabilities | undefined {
  const generation = engine.model.imageDecoder?.config.image_generation
  if (generation === undefined) return undefined
  return {
    size: generation.image_size,
    grid: generation.grid,
    tokensPerImage: engine.imageGrammarLength(generation.grid),
    denoiseSteps: generation.steps,
  }
}

function generationDefaults(config: KelixConfig): GenerationDefaults {
  const g = config.generation
  return { maxNewTokens: g.max_new_tokens, temperature: g.temperature, topP: g.top_p, topK: g.top_k }
}
