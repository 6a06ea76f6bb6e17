/**
 * Execution providers: each asked for is tried in order; one that cannot be
 * loaded is skipped with ONNX Runtime's reason (simulated here by a probe that
 * fails as a missing CUDA library fails), the first that loads is used with
 * the rest as its fallbacks, and none loading is one clear error.
 */
import t from 'tap'
import { KelixError } from '../../src/errors/kelix-error.js'
import { loadModel } from '../../src/engine/model.js'
import { chooseProviders, type ExecutionProvider } from '../../src/engine/providers.js'
import { tinyModelDir } from '../helpers/tiny-model.js'

const CUDA_MISSING = 'OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library'
// ONNX Runtime's message on a machine without a GPU or Vulkan driver.
const WEBGPU_MISSING =
  '/onnxruntime_src/onnxruntime/core/providers/webgpu/webgpu_context.cc:136 ... adapter_result.status == wgpu::RequestAdapterStatus::Success was false. Failed to get a WebGPU adapter: No supported adapters'
const WEBGPU_REASON =
  "Failed to get a WebGPU adapter: No supported adapters (no GPU with a Vulkan driver; on a CPU-only machine Mesa's lavapipe provides one; README: GPUs)"
const failing =
  (...broken: ExecutionProvider[]) =>
  async (provider: ExecutionProvider) => {
    if (broken.includes(provider))
      throw new Error(provider === 'cuda' ? `${CUDA_MISSING}\n  at native` : WEBGPU_MISSING)
  }

t.test('a provider that cannot load is skipped with why; the next one is used', async (t) => {
  t.same(await chooseProviders(['cuda', 'cpu'], failing('cuda')), {
    inUse: ['cpu'],
    skipped: [
      {
        provider: 'cuda',
        reason: `${CUDA_MISSING} (the CUDA provider or the CUDA 13 / cuDNN 9 libraries it needs are not installed; README: GPUs)`,
      },
    ],
  })
  t.same(
    await chooseProviders(['webgpu', 'cuda', 'cpu'], failing()),
    { inUse: ['webgpu', 'cuda', 'cpu'], skipped: [] },
    'the first that loads, the rest as its fallbacks',
  )
  t.same((await chooseProviders(['webgpu', 'cpu'], failing('webgpu'))).skipped, [
    { provider: 'webgpu', reason: WEBGPU_REASON },
  ])
})

t.test('none loading is EXECUTION_PROVIDER_UNAVAILABLE naming each and why', async (t) => {
  const error = await chooseProviders(['webgpu', 'cuda'], failing('webgpu', 'cuda')).catch((err: unknown) => err)
  t.type(error, KelixError)
  t.equal((error as KelixError).code, 'EXECUTION_PROVIDER_UNAVAILABLE')
  t.match(
    (error as KelixError).message,
    /^none of webgpu, cuda could be loaded: webgpu: Failed to get a WebGPU adapter: No supported adapters \(no GPU with a Vulkan driver; [^)]*\); cuda: OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library \(/,
  )
})

t.test('ONNX Runtime itself: cpu always loads; a model reports what it runs on', async (t) => {
  t.same(await chooseProviders(['cpu']), { inUse: ['cpu'], skipped: [] })
  const model = await loadModel(await tinyModelDir(), { intraOpThreads: 1, executionProviders: ['cpu'] })
  t.teardown(() => model.dispose())
  t.same(model.providers, { inUse: ['cpu'], skipped: [] })
})
