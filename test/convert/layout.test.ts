/**
 * The published layout as the project writes it (kelix-checkpoint-layout.ts)
 * is the reference's, key for key and shape for shape; and the tiny
 * checkpoint converts to the tiny model's documented config.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { kelixTensorSpecs, keyeArConfig, type KelixCheckpointSizes } from '../../src/builder/kelix-checkpoint-layout.js'
import { TINY_CONFIG } from '../../src/builder/tiny.js'
import { Checkpoint } from '../../src/convert/checkpoint.js'
import { REFERENCE_CHECKPOINT } from '../helpers/kelix-reference.js'
import { tinyModelDir } from '../helpers/tiny-model.js'

/** The reference set's sizes, as its README gives them. */
const REFERENCE_SIZES: KelixCheckpointSizes = {
  textVocab: 512,
  codebooks: 8,
  codesPerBook: 64,
  hidden: 64,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  headDim: 16,
  intermediate: 128,
  maxSeqLen: 4096,
  ropeBase: 1e6,
  normEps: 1e-6,
  vision: {
    width: 32,
    layers: 2,
    heads: 2,
    mlp: 64,
    patchSize: 14,
    positionTable: 4,
    layerNormEps: 1e-6,
    ropeTheta: 10000,
  },
  quantizer: { codeDim: 16, tableWidth: 24, upProjection: 32 },
  blockDecoder: { dModel: 32, heads: 4, layers: 1, feedForward: 64, positionRows: 17 },
  ids: { eos: 502, imagePad: 505, visionStart: 503, visionEnd: 504, eob: 506 },
  lmHeadGain: 1,
}

t.test('the layout written from sizes has exactly the reference checkpoint keys and shapes', async (t) => {
  const reference = await Checkpoint.open(REFERENCE_CHECKPOINT)
  t.teardown(() => reference.close())
  const ours = new Map(kelixTensorSpecs(REFERENCE_SIZES).map((s) => [s.key, s.shape]))
  t.equal(ours.size, 158)
  t.same([...ours.keys()].sort(), reference.keys())
  for (const key of reference.keys()) t.same(ours.get(key), reference.tensor(key).shape, key)
})

t.test('the config written from sizes has the reference config fields the converter reads', async (t) => {
  const reference = JSON.parse(await readFile(join(REFERENCE_CHECKPOINT, 'config.json'), 'utf8')) as Record<
    string,
    Record<string, unknown>
  >
  const ours = keyeArConfig(REFERENCE_SIZES) as Record<string, Record<string, unknown>>
  t.equal(ours.__class__, 'KeyeARConfig')
  for (const section of ['qwen_config', 'tokenizer_config', 'token_decoder_config']) {
    t.same(
      Object.keys(ours[section] as object).sort(),
      Object.keys(reference[section] as object).sort(),
      `${section}: the same fields`,
    )
  }
  const withoutMrope = (section: unknown) =>
    Object.fromEntries(Object.entries(section as object).filter(([field]) => field !== 'mrope_section'))
  t.same(
    withoutMrope(ours.qwen_config),
    withoutMrope(reference.qwen_config),
    'qwen_config (mrope_section aside: null in the real release)',
  )
  t.same(ours.token_decoder_config, reference.token_decoder_config)
})

t.test('the embedded model is the tiny checkpoint converted: its config.json is TINY_CONFIG', async (t) => {
  const { builder, ...config } = JSON.parse(
    await readFile(join(await tinyModelDir(), 'config.json'), 'utf8'),
  ) as Record<string, unknown>
  t.match(builder, /^kelix-serve-tiny-\d+ seed \d+$/)
  t.same(config, TINY_CONFIG)
})
