/**
 * The converted reference checkpoint computes what the Kelix reference
 * implementation computes (../shared/kelix-reference/kelix, tolerances from
 * its README): visual codes, pre-norm hidden states, every slot's logits by
 * vocabulary part, and greedy chats under the server's chat rule.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ort from 'onnxruntime-node'
import t, { type Test } from 'tap'
import { hashModelDir } from '../../src/builder/build-model.js'
import { Checkpoint, writeCheckpoint, type TensorToWrite } from '../../src/convert/checkpoint.js'
import { convertCheckpoint, type ConversionSummary } from '../../src/convert/convert.js'
import { Engine } from '../../src/engine/engine.js'
import { preprocessImage } from '../../src/engine/images/preprocess.js'
import { loadModel, type KelixModel } from '../../src/engine/model.js'
import { generateAll } from '../../src/engine/offline.js'
import { codebookPart, TEXT_PART, vocabPartRange } from '../../src/engine/vocab-parts.js'
import { options } from '../helpers/engine.js'
import {
  argmax,
  chatMessages,
  readReference,
  REFERENCE_CHECKPOINT,
  referenceImage,
  relativeError,
  type KelixReference,
} from '../helpers/kelix-reference.js'
import { i64, maxAbsDiff } from '../helpers/tensors.js'
import { webgpuSkip } from '../helpers/webgpu.js'

const ref = readReference()
let summary: ConversionSummary
let model: KelixModel
let modelDir: string

t.before(async () => {
  const root = await mkdtemp(join(tmpdir(), 'kelix-reference-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  modelDir = join(root, 'model')
  summary = await convertCheckpoint({ from: REFERENCE_CHECKPOINT, out: modelDir })
  model = await loadModel(modelDir, { intraOpThreads: 1 })
  t.teardown(() => model.dispose())
})

t.test('the derived config has the reference vocabulary layout and special ids', async (t) => {
  t.same(summary.config.vocab, {
    text_vocab_size: 512,
    num_codebooks: 8,
    codebook_size: 64,
    visual_id_offset: 512,
    vocab_size: 1024,
  })
  t.same(summary.config.special_tokens, ref.special_tokens)
  t.same(
    [
      summary.config.block_size,
      summary.config.llm.num_layers,
      summary.config.llm.hidden_size,
      summary.config.llm.rope_theta,
    ],
    [9, 2, 64, 1e6],
  )
})

t.test('keys no graph reads are listed, never dropped silently', async (t) => {
  t.same(summary.unused.map((u) => u.family).sort(), [
    'lm_head.weight',
    'model.model.token_head.final_norm.bias',
    'model.model.token_head.final_norm.weight',
    'visual_tokenizer.up_projectors.{i}.weight',
    'visual_tokenizer.visual.embeddings.packing_position_embedding.weight',
  ])
  t.same(summary.partlyUsed.map((p) => [p.family, p.tensors, p.rows, p.of]).sort(), [
    ['model.model.token_head.position_embedding.weight', 1, 9, 17],
    ['visual_tokenizer.quantizer.{i}.embedding.weight', 8, 64, 512],
  ])
})

t.test('both images give exactly the reference codes', async (t) => {
  for (const image of ref.visual_tokenizer) {
    const [, rows, cols] = image.grid_thw as [number, number, number]
    const patches = Float32Array.from(image.pixel_patches.flat())
    const out = await model.visualTokenizer.run({
      pixel_patches: new ort.Tensor('float32', patches, [rows * cols, 588]),
      grid_hw: i64([rows, cols], [2]),
    })
    t.same((out.codes as ort.Tensor).dims, [image.local_codes.length, 8], image.name)
    t.same(
      Array.from((out.codes as ort.Tensor).data as BigInt64Array, Number),
      image.local_codes.flat(),
      `${image.name}: codes`,
    )
  }
})

t.test("the engine's preprocessing of each PNG gives the reference patches", async (t) => {
  for (const image of ref.visual_tokenizer) {
    const prepared = await preprocessImage(await referenceImage(image.name), model.config, 'auto', { maxPixels: 1e7 })
    t.same([prepared.rows * 2, prepared.cols * 2], image.grid_thw.slice(1), `${image.name}: grid`)
    t.ok(maxAbsDiff(prepared.patches, image.pixel_patches.flat()) < 1e-6, `${image.name}: patches`)
  }
})

t.test('pre-norm hidden states of the mixed text and image prompt are within 1e-4', async (t) => {
  const { block_ids: blocks, position_ids: positions, hidden_states_prenorm: expected } = ref.decoder
  const S = blocks.length
  const { num_layers: layers, num_key_value_heads: kvHeads, head_dim: headDim } = model.config.llm
  const empty = new ort.Tensor('float32', new Float32Array(0), [1, kvHeads, 0, headDim])
  const past = Object.fromEntries(
    Array.from({ length: layers }, (_, i) => [`past_key_values.${i}.key`, `past_key_values.${i}.value`])
      .flat()
      .map((name) => [name, empty]),
  )
  const out = await model.decoder.run({
    ...past,
    block_ids: i64(blocks.flat(), [1, S, 9]),
    attention_mask: i64(Array(S).fill(1), [1, S]),
    position_ids: i64(positions, [1, S]),
  })
  const hidden = out.hidden_states as ort.Tensor
  t.same(hidden.dims, [1, S, 64])
  const { worst, bound } = relativeError(hidden.data as Float32Array, expected.flat(), 1e-4)
  t.ok(worst <= bound, `max |diff| ${worst.toExponential(2)} ≤ ${bound.toExponential(2)}`)
})

t.test(
  "every slot's logits, for every vocabulary part, are within 1e-4 of the reference's slice with the same argmax",
  async (t) => {
    const { hidden_state: hidden, prefix_ids: prefix, slot_logits: expected } = ref.block_decoder
    const parts = [TEXT_PART, ...Array.from({ length: 8 }, (_, k) => codebookPart(k))]
    for (let slot = 0; slot < 9; slot++) {
      for (const part of parts) {
        const out = await model.blockDecoder.run({
          hidden_state: new ort.Tensor('float32', Float32Array.from(hidden), [1, hidden.length]),
          block_ids: i64(prefix.slice(0, slot), [1, slot]),
          vocab_part: i64([part], []),
        })
        const [lo, hi] = vocabPartRange(model.config, part)
        const want = (expected[slot] as number[]).slice(lo, hi)
        const got = (out.logits as ort.Tensor).data as Float32Array
        const { worst, bound } = relativeError(got, want, 1e-4)
        t.ok(
          worst <= bound && argmax(got) === argmax(want),
          `slot ${slot}, part ${part}: max |diff| ${worst.toExponential(2)} ≤ ${bound.toExponential(2)}, argmax ${argmax(got)}`,
        )
      }
    }
  },
)

/** Each reference chat, greedy under the chat rule, gives the reference's prompt blocks and tokens. */
async function referenceChats(t: Test, engine: Engine): Promise<void> {
  for (const chat of ref.chats) {
    const prompt = ref.prompts[chat.prompt] as KelixReference['prompts'][string]
    const prepared = await engine.preparePrompt(await chatMessages(prompt.messages), { addGenerationPrompt: true })
    t.same(
      Array.from(prepared.blocks.view(0, prepared.blocks.length)),
      prompt.blocks.flat(),
      `${chat.prompt}: prompt blocks`,
    )
    const result = (
      await generateAll(engine, [{ id: chat.prompt, prompt: prepared, options: options({ maxNewTokens: 16 }) }])
    ).get(chat.prompt)
    t.same(result?.tokenIds, chat.tokens, `${chat.prompt}: tokens`)
    t.equal(result?.finishReason, chat.finish_reason, `${chat.prompt}: finish reason`)
  }
}

t.test('greedy chats under the chat rule give the reference tokens, from the reference prompt blocks', async (t) => {
  await referenceChats(t, new Engine(model))
})

t.test(
  'on WebGPU, with the cache on the device, the greedy chats give the reference tokens too',
  { skip: await webgpuSkip() },
  async (t) => {
    const onGpu = await loadModel(modelDir, { executionProviders: ['webgpu'] })
    t.teardown(() => onGpu.dispose())
    t.ok(onGpu.deviceKv !== undefined, 'the device KV store')
    await referenceChats(t, new Engine(onGpu))
  },
)

t.test('the same checkpoint stored in float32 converts to byte-identical weights', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'kelix-reference-f32-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  const bf16 = await Checkpoint.open(REFERENCE_CHECKPOINT)
  t.teardown(() => bf16.close())
  const tensors = new Map<string, TensorToWrite>()
  for (const key of bf16.keys()) tensors.set(key, { shape: bf16.tensor(key).shape, data: await bf16.read(key) })
  const files = Object.fromEntries(
    await Promise.all(
      ['config.json', 'tokenizer.json', 'tokenizer_config.json'].map(async (f) => [
        f,
        await readFile(join(REFERENCE_CHECKPOINT, f)),
      ]),
    ),
  )
  await writeCheckpoint(join(root, 'f32'), tensors, { dtype: 'F32', shardBytes: 1 << 20, extraFiles: files })
  await convertCheckpoint({ from: join(root, 'f32'), out: join(root, 'from-f32') })
  await convertCheckpoint({ from: REFERENCE_CHECKPOINT, out: join(root, 'from-bf16') })
  const [fromF32, fromBf16] = [await hashModelDir(join(root, 'from-f32')), await hashModelDir(join(root, 'from-bf16'))]
  t.same(
    Object.keys(fromF32).filter((f) => f.endsWith('.data')),
    ['block_decoder.onnx.data', 'decoder.onnx.data', 'embed_tokens.data', 'visual_tokenizer.onnx.data'],
  )
  for (const file of Object.keys(fromBf16).filter((f) => f.endsWith('.onnx') || f.endsWith('.data')))
    t.equal(fromF32[file], fromBf16[file], file)
})
