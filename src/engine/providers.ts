/**
 * Which ONNX Runtime execution providers a model is opened with. Each
 * provider asked for (`KELIX_EXECUTION_PROVIDERS=cuda,cpu`) is tried in order
 * on a one-node graph; one that cannot be loaded (a missing CUDA library, no
 * GPU adapter, a provider this build lacks) is skipped with its reason, and
 * the first that loads is used, the ones after it kept as its fallbacks for
 * operators it does not run. None loading is EXECUTION_PROVIDER_UNAVAILABLE.
 */
import ort from 'onnxruntime-node'
import onnxProto from 'onnx-proto'
import { KelixError } from '../errors/kelix-error.js'

export type ExecutionProvider = 'cpu' | 'cuda' | 'webgpu'

export interface ProviderChoice {
  /** The providers sessions are opened with: the first that loaded, then the rest asked for after it. */
  inUse: ExecutionProvider[]
  /** Those asked for before it that could not be loaded, with why. */
  skipped: Array<{ provider: ExecutionProvider; reason: string }>
}

/** Loads a one-node graph on `provider` alone; throws ONNX Runtime's error when it cannot. */
export type ProviderProbe = (provider: ExecutionProvider) => Promise<void>

export async function chooseProviders(
  requested: readonly ExecutionProvider[],
  probe: ProviderProbe = probeProvider,
): Promise<ProviderChoice> {
  const skipped: ProviderChoice['skipped'] = []
  for (const [i, provider] of requested.entries()) {
    try {
      await probe(provider)
      return { inUse: requested.slice(i), skipped }
    } catch (err) {
      skipped.push({ provider, reason: reasonOf(provider, err) })
    }
  }
  throw new KelixError(
    'EXECUTION_PROVIDER_UNAVAILABLE',
    `none of ${requested.join(', ')} could be loaded: ${skipped.map((s) => `${s.provider}: ${s.reason}`).join('; ')}`,
  )
}

/** ONNX Runtime's first line, with what it usually means for the provider. */
function reasonOf(provider: ExecutionProvider, err: unknown): string {
  const line = (err instanceof Error ? err.message : String(err)).split('\n')[0]?.trim() ?? ''
  if (provider === 'cuda' && /Failed to load shared library/.test(line))
    return `${line} (the CUDA provider or the CUDA 13 / cuDNN 9 libraries it needs are not installed; README: GPUs)`
  const adapter = /Failed to get a WebGPU adapter.*/.exec(line)
  if (provider === 'webgpu' && adapter !== null)
    return `${adapter[0]} (no GPU with a Vulkan driver; on a CPU-only machine Mesa's lavapipe provides one; README: GPUs)`
  return line
}

let probeGraph: Uint8Array | undefined

/** y = Identity(x), float [1]: the smallest graph every provider can take. */
function identityGraph(): Uint8Array {
  const { onnx } = onnxProto
  const tensor = (name: string) => ({
    name,
    type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [{ dimValue: 1 }] } } },
  })
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'probe',
      node: [{ opType: 'Identity', input: ['x'], output: ['y'] }],
      input: [tensor('x')],
      output: [tensor('y')],
    },
  })
  return onnx.ModelProto.encode(model).finish()
}

async function probeProvider(provider: ExecutionProvider): Promise<void> {
  probeGraph ??= identityGraph()
  const session = await ort.InferenceSession.create(probeGraph, { executionProviders: [provider] })
  await session.release()
}
