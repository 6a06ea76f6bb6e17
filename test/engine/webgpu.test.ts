/**
 * The engine on ONNX Runtime's WebGPU provider (a GPU, or Mesa's software
 * Vulkan driver lavapipe in CI): every graph runs there, the decoder's cache
 * stays on the device, and greedy tokens equal the CPU's for text, image and
 * mixed batches. Skips with the reason where WebGPU does not load.
 */
import t from 'tap'
import { Engine } from '../../src/engine/engine.js'
import { decodeImage, DenoiseJob } from '../../src/engine/image-gen/index.js'
import { DeviceKvStore } from '../../src/engine/kv/device-kv-store.js'
import { loadModel, type ImageDecoder, type KelixModel } from '../../src/engine/model.js'
import { generateAll, type OfflineRequest } from '../../src/engine/offline.js'
import { GREEDY } from '../../src/engine/types.js'
import { options, userTurn } from '../helpers/engine.js'
import { maxAbsDiff, spanHidden } from '../helpers/image-gen.js'
import { patternPng } from '../helpers/images.js'
import { tinyModelDir } from '../helpers/tiny-model.js'
import { webgpuSkip } from '../helpers/webgpu.js'

const skip = await webgpuSkip()

/** The tiny model on the CPU and on WebGPU, shared by the tests. */
async function engines(): Promise<{ cpu: Engine; gpu: Engine }> {
  const dir = await tinyModelDir()
  const models: KelixModel[] = [
    await loadModel(dir, { intraOpThreads: 1 }),
    await loadModel(dir, { executionProviders: ['webgpu'] }),
  ]
  t.teardown(() => Promise.all(models.map((m) => m.dispose())))
  return { cpu: new Engine(models[0] as KelixModel), gpu: new Engine(models[1] as KelixModel) }
}
const pair = skip === false ? await engines() : undefined

/** Eight greedy requests: short and long text, three image sizes, a one-token prompt, two images in one turn. */
async function mixedBatch(engine: Engine): Promise<OfflineRequest[]> {
  const chat = (text: string, images: Uint8Array[] = []) =>
    engine.preparePrompt(userTurn(text, images), { addGenerationPrompt: true })
  const request = async (
    id: string,
    prompt: Promise<OfflineRequest['prompt']> | OfflineRequest['prompt'],
    max: number,
  ) => ({
    id,
    prompt: await prompt,
    options: options({ maxNewTokens: max }),
  })
  return Promise.all([
    request('hi', chat('Hi'), 6),
    request('long', chat('Tokens per second and time to first token are the numbers that matter. '.repeat(5)), 20),
    request('small-image', chat('What is this?', [await patternPng(112, 112, 3)]), 12),
    request('image', chat('Describe the scene in one sentence.', [await patternPng(224, 224, 2)]), 20),
    request('big-image', chat('Count the apples.', [await patternPng(336, 336, 4)]), 16),
    request('one-token', engine.preparePlainPrompt({ ids: [42] }), 10),
    request('two-images', chat('Compare them.', [await patternPng(112, 168, 5), await patternPng(168, 112, 6)]), 14),
    request('story', chat('Tell me a story.'), 24),
  ])
}

const tokens = (results: Map<string, { tokenIds: number[] }>) =>
  Object.fromEntries([...results].map(([id, r]) => [id, r.tokenIds]))

t.test("on WebGPU the cache stays on the device and greedy tokens equal the CPU's", { skip }, async (t) => {
  const { cpu, gpu } = pair as { cpu: Engine; gpu: Engine }
  t.same(gpu.model.providers.inUse, ['webgpu'])
  t.ok(gpu.kv instanceof DeviceKvStore, 'the device KV store')
  const cpuBatch = tokens(await generateAll(cpu, await mixedBatch(cpu)))
  t.same(tokens(await generateAll(gpu, await mixedBatch(gpu))), cpuBatch, 'a mixed batch of 8')
  t.same(
    tokens(await generateAll(gpu, await mixedBatch(gpu), { chunk: 16 })),
    cpuBatch,
    'with prompts prefilled in chunks',
  )
  t.equal(gpu.kv.sequences, 0, 'no cache left behind')
  t.equal(gpu.kv.positions, 0)
})

t.test(
  'image generation on WebGPU: the same grid as the CPU, then DiT and VAE within float tolerance',
  { skip },
  async (t) => {
    const { cpu, gpu } = pair as { cpu: Engine; gpu: Engine }
    const grid = async (engine: Engine) => {
      const prompt = await engine.preparePrompt([{ role: 'user', content: 'A red cat on a chair.' }], {
        addGenerationPrompt: true,
      })
      engine.addImageGeneration('img', prompt, { sampling: GREEDY, grid: 6 })
      const seq = engine.get('img')
      if (seq === undefined) throw new Error('not added')
      while (seq.finishReason === undefined)
        await engine.step([{ id: 'img', numBlocks: seq.blocks.length - seq.numComputed }])
      const result = { codes: seq.imageCodes(), states: seq.capture?.states as Float32Array }
      engine.release('img')
      return result
    }
    const [onCpu, onGpu] = [await grid(cpu), await grid(gpu)]
    t.same(onGpu.codes, onCpu.codes, 'the greedy image codes')
    t.ok(maxAbsDiff(onGpu.states, onCpu.states) < 1e-3, 'the span hidden states agree within 1e-3')

    const image = async (decoder: ImageDecoder) => {
      const job = DenoiseJob.fromSpan(decoder, spanHidden(decoder.config, 68, 0.25), 5)
      while (!(await job.step()));
      return { latents: job.latents, rgb: await decodeImage(decoder, job.latents) }
    }
    const a = await image(cpu.model.imageDecoder as ImageDecoder)
    const b = await image(gpu.model.imageDecoder as ImageDecoder)
    t.ok(maxAbsDiff(a.latents, b.latents) < 1e-3, `DiT latents agree within 1e-3 (${maxAbsDiff(a.latents, b.latents)})`)
    let pixels = 0
    a.rgb.forEach((v, i) => (pixels = Math.max(pixels, Math.abs(v - (b.rgb[i] as number)))))
    t.equal(a.rgb.length, b.rgb.length)
    t.ok(pixels <= 1, `VAE pixels agree within 1 level (${pixels})`)
  },
)
