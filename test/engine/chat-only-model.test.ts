/** A chat-only export (no image decoder) loads and answers exactly as the full export does. */
import t from 'tap'
import { Engine } from '../../src/engine/engine.js'
import { loadModel } from '../../src/engine/model.js'
import { generateAll } from '../../src/engine/offline.js'
import { GREEDY } from '../../src/engine/types.js'
import { chatOnlyModelDir, tinyModelDir } from '../helpers/tiny-model.js'

async function answer(dir: string): Promise<{ tokenIds: number[]; hasImageDecoder: boolean }> {
  const model = await loadModel(dir, { intraOpThreads: 1 })
  try {
    const engine = new Engine(model)
    const prompt = await engine.preparePrompt([{ role: 'user', content: 'What do operators watch?' }], {
      addGenerationPrompt: true,
    })
    const result = await generateAll(engine, [
      { id: 'a', prompt, options: { sampling: GREEDY, maxNewTokens: 10, stop: [], stopTokenIds: [] } },
    ])
    return { tokenIds: result.get('a')?.tokenIds ?? [], hasImageDecoder: model.imageDecoder !== undefined }
  } finally {
    await model.dispose()
  }
}

t.test('without image_generation, dit.onnx and vae_decoder.onnx are not needed and chat is unchanged', async (t) => {
  const chatOnly = await answer(await chatOnlyModelDir(t))
  const full = await answer(await tinyModelDir())
  t.equal(chatOnly.hasImageDecoder, false)
  t.equal(full.hasImageDecoder, true)
  t.equal(chatOnly.tokenIds.length, 10)
  t.same(chatOnly.tokenIds, full.tokenIds, 'the same greedy tokens')
})
