/**
 * A server asked for `cuda,cpu` on a machine without the CUDA provider's
 * libraries starts on the CPU: the readiness body and the metrics say which
 * provider is in use. (Where CUDA does load, they say cuda.)
 */
import ort from 'onnxruntime-node'
import t from 'tap'
import { createMetrics } from '../../src/server/metrics.js'
import { tinyModelDir } from '../helpers/tiny-model.js'
import { serve, tinyEngine } from '../routes/serve.js'

async function cudaLoads(): Promise<boolean> {
  try {
    await (
      await ort.InferenceSession.create(`${await tinyModelDir()}/block_decoder.onnx`, { executionProviders: ['cuda'] })
    ).release()
    return true
  } catch {
    return false
  }
}

t.test('cuda,cpu: the provider in use is in the readiness body and the metrics', async (t) => {
  const expected = (await cudaLoads()) ? 'cuda' : 'cpu'
  const metrics = createMetrics({ processMetrics: false })
  const engine = await tinyEngine(t, { executionProviders: ['cuda', 'cpu'], observer: metrics.observer })
  const { base } = await serve(t, engine, { metrics })
  t.equal(engine.executionProvider, expected)
  const ready = await fetch(`${base}/health/ready`)
  t.same(await ready.json(), { status: 'ready', execution_provider: expected })
  const text = await (await fetch(`${base}/metrics`)).text()
  t.same(
    text.split('\n').filter((l) => l.startsWith('kelix_execution_provider_info')),
    [`kelix_execution_provider_info{provider="${expected}"} 1`],
  )
  if (expected === 'cpu')
    t.match(engine.model.providers.skipped, [{ provider: 'cuda', reason: /could not|Failed to load/ }])
})
