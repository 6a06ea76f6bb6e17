/**
 * The real tokenizer path: a checkpoint with Kelix's real vocabulary layout
 * (151,936 text ids, Qwen3's tokenizer with Kelix's added tokens) and small
 * widths converts, takes its special ids from the tokenizer's strings, and
 * serves a chat whose prompt has Qwen's real token ids.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { keyeArConfig, kelixTensorSpecs, type KelixCheckpointSizes } from '../../src/builder/kelix-checkpoint-layout.js'
import { seededTensors } from '../../src/builder/tiny-checkpoint.js'
import { writeCheckpoint } from '../../src/convert/checkpoint.js'
import { convertCheckpoint } from '../../src/convert/convert.js'
import { Engine } from '../../src/engine/engine.js'
import { loadModel } from '../../src/engine/model.js'
import { generateAll } from '../../src/engine/offline.js'
import { options, userTurn } from '../helpers/engine.js'
import { patternPng } from '../helpers/images.js'
import { KELIX_ADDED_IDS, kelixTokenizerFiles, QWEN3_SPECIAL_IDS } from '../helpers/qwen3-tokenizer.js'

const SIZES: KelixCheckpointSizes = {
  textVocab: 151936,
  codebooks: 8,
  codesPerBook: 16,
  hidden: 32,
  layers: 1,
  heads: 2,
  kvHeads: 1,
  headDim: 16,
  intermediate: 64,
  maxSeqLen: 2048,
  ropeBase: 1e6,
  normEps: 1e-6,
  vision: {
    width: 32,
    layers: 1,
    heads: 2,
    mlp: 64,
    patchSize: 14,
    positionTable: 4,
    layerNormEps: 1e-6,
    ropeTheta: 10000,
  },
  quantizer: { codeDim: 8, tableWidth: 8, upProjection: 8 },
  blockDecoder: { dModel: 16, heads: 2, layers: 1, feedForward: 32, positionRows: 9 },
  ids: {
    eos: QWEN3_SPECIAL_IDS.im_end,
    imagePad: QWEN3_SPECIAL_IDS.image_pad,
    visionStart: QWEN3_SPECIAL_IDS.vision_start,
    visionEnd: QWEN3_SPECIAL_IDS.vision_end,
    eob: KELIX_ADDED_IDS.eob,
  },
  lmHeadGain: 1,
}

t.test(
  'a real-vocabulary checkpoint converts, and its prompt carries Qwen token ids and the row markers',
  async (t) => {
    const root = await mkdtemp(join(tmpdir(), 'kelix-real-vocab-'))
    t.teardown(() => rm(root, { recursive: true, force: true }))
    const tensors = seededTensors(kelixTensorSpecs(SIZES), 7)
    const { tokenizerJson, tokenizerConfig } = await kelixTokenizerFiles()
    const json = (value: object) => JSON.stringify(value)
    await writeCheckpoint(join(root, 'checkpoint'), tensors, {
      dtype: 'BF16',
      shardBytes: 4 * 1024 * 1024,
      extraFiles: {
        'config.json': json(keyeArConfig(SIZES)),
        'tokenizer.json': json(tokenizerJson),
        'tokenizer_config.json': json(tokenizerConfig),
      },
    })
    const summary = await convertCheckpoint({ from: join(root, 'checkpoint'), out: join(root, 'model') })
    t.same(summary.config.special_tokens, { ...QWEN3_SPECIAL_IDS, ...KELIX_ADDED_IDS })
    t.same(summary.config.vocab, {
      text_vocab_size: 151936,
      num_codebooks: 8,
      codebook_size: 16,
      visual_id_offset: 151936,
      vocab_size: 152064,
    })

    const model = await loadModel(join(root, 'model'), { intraOpThreads: 1 })
    t.teardown(() => model.dispose())
    const engine = new Engine(model)
    const prompt = await engine.preparePrompt(userTurn('Hi', [await patternPng(56, 56, 1)]), {
      addGenerationPrompt: true,
    })
    const firstIds = (from: number, count: number) =>
      Array.from({ length: count }, (_, i) => prompt.blocks.firstId(from + i))
    // "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n" in Qwen's vocabulary.
    t.same(firstIds(0, 14), [151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198, 151644, 872, 198])
    // Two rows of two positions, each row "<|mm_pos_start|> 0 , 2 <|mm_pos_end|>" (Qwen splits digits) then its two image blocks.
    t.equal(prompt.imagePositions, 4)
    const isImage = (id: number) => (id >= 151936 ? 'image' : id)
    t.same(firstIds(14, 16).map(isImage), [
      151652,
      151682,
      15,
      11,
      17,
      151683,
      'image',
      'image',
      151682,
      16,
      11,
      17,
      151683,
      'image',
      'image',
      151653,
    ])
    t.same(
      firstIds(prompt.blocks.length - 5, 5),
      [151645, 198, 151644, 77091, 198],
      '<|im_end|> "\\n" <|im_start|> "assistant" "\\n"',
    )
    const result = (await generateAll(engine, [{ id: 'a', prompt, options: options({ maxNewTokens: 4 }) }])).get('a')
    t.ok(result?.finishReason === 'stop' || result?.tokenIds.length === 4)
    t.ok(
      result?.tokenIds.every((id) => id < 151936 && id !== KELIX_ADDED_IDS.eob),
      'text ids only, never <eob>',
    )
  },
)
