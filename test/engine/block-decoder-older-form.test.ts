/**
 * A block_decoder.onnx without `vocab_part` (the older form: whole-vocabulary
 * logits) still loads, and the engine then reads each row's part out of the
 * whole row: every output equals the one of the graph that computes parts.
 */
import t from 'tap'
import { Engine } from '../../src/engine/engine.js'
import { TINY_CONFIG } from '../../src/builder/tiny.js'
import { loadModel } from '../../src/engine/model.js'
import { generateAll, type OfflineRequest } from '../../src/engine/offline.js'
import { GREEDY } from '../../src/engine/types.js'
import { codebookPart, vocabPartRange } from '../../src/engine/vocab-parts.js'
import { options, userTurn } from '../helpers/engine.js'
import { patternPng } from '../helpers/images.js'
import { olderBlockDecoderModelDir, tinyModelDir } from '../helpers/tiny-model.js'

async function engineAt(dir: string) {
  const model = await loadModel(dir, { intraOpThreads: 1 })
  return { engine: new Engine(model), dispose: () => model.dispose() }
}

/** Chat answers that exercise greedy, logprobs, logit_bias, penalties and seeded sampling, batched together. */
async function chatRequests(engine: Engine): Promise<OfflineRequest[]> {
  const image = await engine.preparePrompt(userTurn('Describe the picture.', [await patternPng(224, 224, 1)]), {
    addGenerationPrompt: true,
  })
  const text = await engine.preparePrompt(userTurn('Tell me a story.'), { addGenerationPrompt: true })
  return [
    { id: 'greedy-logprobs', prompt: image, options: options({ maxNewTokens: 12, sampling: { topLogprobs: 5 } }) },
    // +100 forces an id of its slot's part; on a visual id it does nothing at a text slot.
    {
      id: 'biased',
      prompt: text,
      options: options({
        maxNewTokens: 12,
        sampling: {
          topLogprobs: 3,
          logitBias: new Map([
            [20, 100],
            [4000, 100],
          ]),
        },
      }),
    },
    {
      id: 'penalised',
      prompt: text,
      options: options({
        maxNewTokens: 12,
        sampling: { presencePenalty: 1.5, frequencyPenalty: 0.5, repetitionPenalty: 1.3 },
      }),
    },
    {
      id: 'sampled',
      prompt: text,
      options: options({ maxNewTokens: 12, sampling: { temperature: 0.9, topP: 0.9, seed: 7, topLogprobs: 2 } }),
    },
  ]
}

/** Slot 3 of every image block is forced to code 77 of sub-codebook 3, by its unified id. */
const FORCED_CODE = 77
const forcedSlot3 = new Map([[vocabPartRange(TINY_CONFIG, codebookPart(3))[0] + FORCED_CODE, 100]])

/** The codes of a seeded image generation on a 6×6 grid. */
async function imageCodes(engine: Engine): Promise<number[]> {
  const prompt = await engine.preparePrompt([{ role: 'user', content: 'A red cat on a chair.' }], {
    addGenerationPrompt: true,
  })
  engine.addImageGeneration('img', prompt, {
    sampling: { ...GREEDY, temperature: 1, topK: 50, seed: 3, logitBias: forcedSlot3 },
    grid: 6,
  })
  const seq = engine.get('img')
  if (seq === undefined) throw new Error('not added')
  while (seq.finishReason === undefined)
    await engine.step([{ id: 'img', numBlocks: seq.blocks.length - seq.numComputed }])
  const codes = Array.from(seq.imageCodes())
  engine.release('img')
  return codes
}

t.test(
  'the older form loads without vocab_part and gives the same chat answers, logprobs and image codes',
  async (t) => {
    const parts = await engineAt(await tinyModelDir())
    t.teardown(parts.dispose)
    const older = await engineAt(await olderBlockDecoderModelDir(t))
    t.teardown(older.dispose)
    t.equal(parts.engine.model.blockDecoderHasParts, true)
    t.equal(older.engine.model.blockDecoderHasParts, false)
    t.same(older.engine.model.blockDecoder.inputNames, ['hidden_state', 'block_ids'])

    const expected = await generateAll(parts.engine, await chatRequests(parts.engine))
    const got = await generateAll(older.engine, await chatRequests(older.engine))
    for (const [id, result] of expected) {
      t.equal(result.tokenIds.length, 12, `${id} generated its 12 tokens`)
      t.same(got.get(id), result, `${id}: same tokens, text and logprobs`)
    }
    const biased = expected.get('biased')
    t.same(new Set(biased?.tokenIds), new Set([20]), 'the forced text id every time')
    t.same(
      biased?.logprobs[0]?.top,
      [
        {
          id: 20,
          text: parts.engine.tokenizer.tokenText(20),
          bytes: [...parts.engine.tokenizer.tokenBytes(20)],
          logprob: 0,
        },
      ],
      'the only finite logprob',
    )

    const codes = await imageCodes(parts.engine)
    t.equal(codes.length, 6 * 6 * 8)
    t.ok(
      codes.filter((_, i) => i % 8 === 3).every((code) => code === FORCED_CODE),
      'slot 3 always the forced code',
    )
    t.ok(new Set(codes.filter((_, i) => i % 8 !== 3)).size > 20, 'the other slots vary')
    t.same(await imageCodes(older.engine), codes, 'the same image codes')
  },
)
