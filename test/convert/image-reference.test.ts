/**
 * The reference checkpoints converted together (LLM, Kelix-DiT, DC-AE) and
 * image generation run through the server's own sampler and decoder against
 * the reference implementation (../shared/kelix-reference/{dit,vae}): every
 * sampling run step by step, the chained decoded image, and a PNG through the
 * HTTP API with the official openai SDK.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import sharp from 'sharp'
import t from 'tap'
import { startEngine } from '../../src/batching/http-thread/engine-client.js'
import { convertCheckpoint, type ConversionSummary } from '../../src/convert/convert.js'
import { decodeImages, DenoiseJob } from '../../src/engine/image-gen/index.js'
import { loadModel, type ImageDecoder, type KelixModel } from '../../src/engine/model.js'
import { buildApp } from '../../src/server/app.js'
import { DIT_REFERENCE_CHECKPOINT, readDitReference, type DitSamplingRun } from '../helpers/dit-reference.js'
import { REFERENCE_CHECKPOINT, relativeError } from '../helpers/kelix-reference.js'
import { float32s } from '../helpers/tensors.js'
import { readVaeReference, VAE_REFERENCE_CHECKPOINT } from '../helpers/vae-reference.js'

const dit = readDitReference()
const vae = readVaeReference()
/** The README's tolerance for sampling runs: rel 1e-3 (errors of each step's velocity compound over the steps). */
const SAMPLING_TOLERANCE = 1e-3

let root: string
let summary: ConversionSummary
let model: KelixModel
let decoder: ImageDecoder

t.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'kelix-image-reference-'))
  // A 2×2 grid: its 16-position span fits the reference DiT's 24-position condition (3×3 would need 26).
  summary = await convertCheckpoint({
    from: REFERENCE_CHECKPOINT,
    dit: DIT_REFERENCE_CHECKPOINT,
    vae: VAE_REFERENCE_CHECKPOINT,
    out: join(root, 'model'),
    imageGeneration: { grid: 2 },
  })
  model = await loadModel(join(root, 'model'), { intraOpThreads: 1 })
  decoder = model.imageDecoder as ImageDecoder
})
t.teardown(async () => {
  await model?.dispose()
  await rm(root, { recursive: true, force: true })
})

t.test(
  'image_generation comes from the checkpoints: condition from the null caption, latents from the DiT, size from the VAE',
  async (t) => {
    t.same(summary.config.image_generation, {
      grid: 2,
      condition_length: 24,
      latent_channels: 8,
      latent_size: 6,
      image_size: 48,
      steps: 50,
      shift: 3,
      guidance: 1,
      dit: { hidden_size: 64, num_layers: 2, num_heads: 4, patch_size: 1, intermediate_size: 160 },
    })
    t.same(
      summary.graphs.map((g) => g.file),
      [
        'visual_tokenizer.onnx',
        'decoder.onnx',
        'block_decoder.onnx',
        'embed_tokens.data',
        'dit.onnx',
        'vae_decoder.onnx',
      ],
    )
    const unused = summary.unused.filter((u) => u.family.startsWith('dit: ') || u.family.startsWith('vae: '))
    t.same(
      unused.map((u) => [u.family, u.tensors]),
      [
        ['dit: pos_embed', 1],
        ['vae: encoder.*', unused.find((u) => u.family === 'vae: encoder.*')?.tensors],
      ],
    )
    t.equal(unused[1]?.parameters, 140939 - 70475, 'the encoder is every parameter the decoder does not read')
  },
)

/** The condition a run uses (`velocity[i].condition` by name) and its mask. */
function runCondition(run: DitSamplingRun): { condition: Float32Array; mask: number[] } {
  const index = Number(/^velocity\[(\d+)\]\.condition$/.exec(run.condition)?.[1])
  const source = dit.velocity[index]
  if (source === undefined) throw new Error(`unknown condition ${run.condition}`)
  return { condition: float32s(source.condition), mask: source.condition_mask }
}

t.test("the server's sampler follows every reference run step by step within rel 1e-3", async (t) => {
  t.same(
    dit.sampling.map((r) => [r.steps, r.guidance]),
    [
      [4, 1],
      [5, 1],
      [4, 4.5],
    ],
  )
  for (const run of dit.sampling) {
    const job = new DenoiseJob(
      decoder,
      { ...runCondition(run), seed: 0 },
      { steps: run.steps, shift: run.shift, guidance: run.guidance, noise: float32s(run.initial_noise) },
    )
    const after = float32s(run.latents_after_step)
    const size = job.latents.length
    for (let i = 0; i < run.steps; i++) {
      t.equal(job.sigma, Math.fround(run.sigmas[i] as number), `${run.name}: σ of step ${i}`)
      await job.step()
      const { worst, bound } = relativeError(job.latents, after.subarray(i * size, (i + 1) * size), SAMPLING_TOLERANCE)
      t.ok(
        worst <= bound,
        `${run.name}: latents after step ${i}: ${worst.toExponential(2)} ≤ ${bound.toExponential(2)}`,
      )
    }
    t.ok(job.done)
    // At guidance 1 the server skips the unconditional pass, as the reference's cond-only run does.
    const final = float32s(
      run.guidance === 1
        ? ((run as { final_latents_cond_only?: number[] }).final_latents_cond_only ?? run.final_latents)
        : run.final_latents,
    )
    const { worst, bound } = relativeError(job.latents, final, SAMPLING_TOLERANCE)
    t.ok(worst <= bound, `${run.name}: final latents: ${worst.toExponential(2)} ≤ ${bound.toExponential(2)}`)
  }
})

t.test('sampled latents decode to the reference image: DiT then DC-AE, 8-bit pixels within ±1', async (t) => {
  const chained = vae.cases.find((c) => c.name === 'dit_euler_4_steps_final_latents')
  const run = dit.sampling.find((r) => r.name === 'euler_4_steps') as DitSamplingRun
  if (chained === undefined) throw new Error('no chained VAE case')
  const job = new DenoiseJob(
    decoder,
    { ...runCondition(run), seed: 0 },
    { steps: run.steps, shift: run.shift, noise: float32s(run.initial_noise) },
  )
  while (!(await job.step()));
  const [rgb] = await decodeImages(decoder, [job.latents])
  const expected = float32s(chained.image_uint8_hwc)
  t.equal(rgb?.length, 48 * 48 * 3)
  const worst = (rgb as Uint8Array).reduce((w, v, i) => Math.max(w, Math.abs(v - (expected[i] as number))), 0)
  t.ok(worst <= 1, `largest pixel difference ${worst}`)
})

t.test('the converted reference model generates a PNG through the HTTP API, with and without guidance', async (t) => {
  const engine = await startEngine({ modelDir: join(root, 'model'), intraOpThreads: 1 })
  t.teardown(() => engine.close())
  const app = await buildApp({
    logger: false,
    engine,
    model: { id: 'kelix-reference', aliases: [], created: 1700000000 },
    systemFingerprint: 'fp_test',
  })
  t.teardown(() => app.close())
  const baseURL = `${await app.listen({ host: '127.0.0.1', port: 0 })}/v1`
  const openai = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0 })
  const plain = await openai.images.generate({
    model: 'kelix-reference',
    prompt: 'a red square',
    size: '48x48',
    seed: 3,
  } as OpenAI.ImageGenerateParamsNonStreaming)
  const png = Buffer.from(plain.data?.[0]?.b64_json ?? '', 'base64')
  const meta = await sharp(png).metadata()
  t.same([meta.format, meta.width, meta.height, meta.channels], ['png', 48, 48, 3])
  const guided = await openai.images.generate({
    model: 'kelix-reference',
    prompt: 'a red square',
    seed: 3,
    guidance_scale: 4.5,
  } as OpenAI.ImageGenerateParamsNonStreaming)
  t.not(guided.data?.[0]?.b64_json, plain.data?.[0]?.b64_json, 'guidance changes the image')
  const bad = await fetch(`${baseURL}/images/generations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'x', guidance_scale: 21 }),
  })
  t.equal(bad.status, 400)
  t.match(await bad.json(), { error: { type: 'invalid_request_error', param: 'guidance_scale' } })
})
