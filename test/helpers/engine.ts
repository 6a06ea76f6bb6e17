/** An engine on the tiny model, and request builders, for engine tests. */
import { Engine, type EngineOptions } from '../../src/engine/engine.js'
import { loadModel } from '../../src/engine/model.js'
import type { SequenceOptions } from '../../src/engine/sequence.js'
import { GREEDY, type ChatMessage, type SamplingParams } from '../../src/engine/types.js'
import { testProviders } from './test-providers.js'
import { tinyModelDir } from './tiny-model.js'

export async function tinyEngine(
  engineOptions: EngineOptions = {},
): Promise<{ engine: Engine; dispose: () => Promise<void> }> {
  const model = await loadModel(await tinyModelDir(), { intraOpThreads: 1, executionProviders: testProviders() })
  return { engine: new Engine(model, engineOptions), dispose: () => model.dispose() }
}

export function options(
  overrides: Omit<Partial<SequenceOptions>, 'sampling'> & { sampling?: Partial<SamplingParams> } = {},
): SequenceOptions {
  return {
    maxNewTokens: overrides.maxNewTokens ?? 24,
    stop: overrides.stop ?? [],
    stopTokenIds: overrides.stopTokenIds ?? [],
    sampling: { ...GREEDY, ...overrides.sampling },
  }
}

export function userTurn(text: string, images: Uint8Array[] = []): ChatMessage[] {
  return [
    {
      role: 'user',
      content: [
        ...images.map((bytes) => ({ type: 'image' as const, image: { bytes, detail: 'auto' as const } })),
        { type: 'text' as const, text },
      ],
    },
  ]
}
