/** POST /v1/images/generations over real HTTP on the tiny model; the request checks on a scripted engine. */
import sharp from 'sharp'
import t from 'tap'
import { EngineEvents } from '../helpers/engine-events.js'
import { IMAGE_CAPABILITIES, ScriptedEngineClient } from '../helpers/scripted-engine-client.js'
import { MODEL, serve, tinyEngine } from './serve.js'
import { IDLE_STATS } from '../helpers/idle-stats.js'

const events = new EngineEvents()
const engine = await tinyEngine(t, { observer: events })

interface ImagesBody {
  created: number
  data: Array<{ b64_json: string; revised_prompt: string }>
  usage: { input_tokens: number; output_tokens: number; total_tokens: number }
}

async function generate(
  base: string,
  body: object,
): Promise<{ status: number; json: ImagesBody & { error?: { code: string; param: string | null; message: string } } }> {
  const res = await fetch(`${base}/v1/images/generations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  return { status: res.status, json: (await res.json()) as ImagesBody }
}

t.test('the same prompt and seed give a byte-identical PNG of the configured size; another seed differs', async (t) => {
  const { base } = await serve(t, engine)
  const a = await generate(base, { model: MODEL, prompt: 'A red cat on a chair', seed: 7 })
  const b = await generate(base, { model: MODEL, prompt: 'A red cat on a chair', seed: 7 })
  const c = await generate(base, { model: MODEL, prompt: 'A red cat on a chair', seed: 8 })
  t.equal(a.status, 200)
  t.equal(a.json.data.length, 1)
  t.equal(a.json.data[0]?.b64_json, b.json.data[0]?.b64_json, 'same seed, same bytes')
  t.not(a.json.data[0]?.b64_json, c.json.data[0]?.b64_json, 'another seed, another image')
  const png = Buffer.from(a.json.data[0]?.b64_json ?? '', 'base64')
  const meta = await sharp(png).metadata()
  t.same([meta.format, meta.width, meta.height, meta.channels], ['png', 64, 64, 3])
  const tokensPerImage = engine.imageCapabilities!.tokensPerImage
  t.same(a.json.usage, {
    input_tokens: a.json.usage.input_tokens,
    output_tokens: tokensPerImage,
    total_tokens: a.json.usage.input_tokens + tokensPerImage,
    input_tokens_details: { text_tokens: a.json.usage.input_tokens, image_tokens: 0 },
  })
  t.equal(a.json.data[0]?.revised_prompt, 'A red cat on a chair')
})

t.test('n = 2 gives two different images and counts both token phases', async (t) => {
  const { base } = await serve(t, engine)
  const res = await generate(base, { prompt: 'Two dogs', n: 2, seed: 1, size: '64x64', response_format: 'b64_json' })
  t.equal(res.status, 200)
  t.equal(res.json.data.length, 2)
  t.not(res.json.data[0]?.b64_json, res.json.data[1]?.b64_json)
  t.equal(res.json.usage.output_tokens, 2 * engine.imageCapabilities!.tokensPerImage)
})

t.test('bad inputs are OpenAI-shaped 400s naming the param', async (t) => {
  const scripted = new ScriptedEngineClient({ imageCapabilities: { ...IMAGE_CAPABILITIES, size: 64 } })
  const { base } = await serve(t, scripted)
  const cases: Array<[object, string, string]> = [
    [{ prompt: '' }, 'prompt', 'invalid_value'],
    [{ prompt: '   ' }, 'prompt', 'invalid_request_error'],
    [{ prompt: 'x', size: '1024x1024' }, 'size', 'invalid_request_error'],
    [{ prompt: 'x', n: 100 }, 'n', 'invalid_value'],
    [{ prompt: 'x', n: 'two' }, 'n', 'invalid_type'],
    [{ prompt: 42 }, 'prompt', 'invalid_type'],
    [{ prompt: 'x', response_format: 'url' }, 'response_format', 'invalid_request_error'],
    [{ prompt: 'x', model: 'dall-e-3' }, 'model', 'model_not_found'],
  ]
  for (const [body, param, code] of cases) {
    const res = await generate(base, body)
    t.equal(res.status, code === 'model_not_found' ? 404 : 400, JSON.stringify(body))
    t.equal(res.json.error?.param, param, `${JSON.stringify(body)} names ${param}`)
    t.equal(res.json.error?.code, code, `${JSON.stringify(body)} is ${code}`)
  }
  const size = await generate(base, { prompt: 'x', size: '1024x1024' })
  t.same(size.json, {
    error: {
      message: "The size '1024x1024' is not supported. This model generates 64x64 (or 'auto').",
      type: 'invalid_request_error',
      param: 'size',
      code: 'invalid_request_error',
    },
  })
  t.same(scripted.imageCalls, [], 'nothing reached the engine')
})

t.test('streaming sends progress, then the completed image, then usage and [DONE]', async (t) => {
  const { base } = await serve(t, engine)
  // Both compared requests find the prompt in the prefix cache: entries computed in another batch shape agree only to float rounding.
  await generate(base, { prompt: 'A boat', seed: 7 })
  const res = await fetch(`${base}/v1/images/generations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'A boat', seed: 7, stream: true }),
  })
  t.equal(res.status, 200)
  t.match(res.headers.get('content-type'), /^text\/event-stream/)
  const events = (await res.text())
    .split('\n\n')
    .filter((e) => e.startsWith('data: '))
    .map((e) => e.slice(6))
  t.equal(events.at(-1), '[DONE]')
  const parsed = events.slice(0, -1).map(
    (e) =>
      JSON.parse(e) as {
        type: string
        phase?: string
        step?: number
        total?: number
        b64_json?: string
        usage?: { output_tokens: number }
      },
  )
  const types = parsed.map((e) => e.type)
  const firstCompleted = types.indexOf('image_generation.completed')
  t.ok(
    firstCompleted > 0 && types.slice(0, firstCompleted).every((type) => type === 'image_generation.progress'),
    'progress first',
  )
  t.same(types.slice(firstCompleted), ['image_generation.completed', 'image_generation.usage'])
  t.same(
    parsed[firstCompleted]?.usage,
    parsed.at(-1)?.usage,
    'the completed event carries the usage, as OpenAI sends it',
  )
  t.equal(parsed.at(-1)?.usage?.output_tokens, engine.imageCapabilities!.tokensPerImage)
  const denoise = parsed.filter((e) => e.phase === 'denoise')
  t.same(denoise.at(-1), {
    type: 'image_generation.progress',
    image_index: 0,
    phase: 'denoise',
    step: engine.imageCapabilities!.denoiseSteps,
    total: engine.imageCapabilities!.denoiseSteps,
  })
  const same = await generate(base, { prompt: 'A boat', seed: 7 })
  t.equal(
    parsed[firstCompleted]?.b64_json,
    same.json.data[0]?.b64_json,
    'the streamed image equals the non-streamed one',
  )
})

t.test('partial_images sends that many previews per image, in order, before its completed event', async (t) => {
  const { base } = await serve(t, engine)
  const res = await fetch(`${base}/v1/images/generations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'A boat', seed: 3, n: 2, stream: true, partial_images: 2 }),
  })
  t.equal(res.status, 200)
  const events = (await res.text())
    .split('\n\n')
    .filter((e) => e.startsWith('data: {'))
    .map(
      (e) =>
        JSON.parse(e.slice(6)) as {
          type: string
          image_index?: number
          partial_image_index?: number
          b64_json?: string
        },
    )
  const shown = events
    .filter((e) => e.type !== 'image_generation.progress')
    .map((e) => `${e.type.replace('image_generation.', '')}:${e.image_index ?? ''}:${e.partial_image_index ?? ''}`)
  for (const index of [0, 1]) {
    t.same(
      shown.filter((s) => s.split(':')[1] === String(index)),
      [`partial_image:${index}:0`, `partial_image:${index}:1`, `completed:${index}:`],
      `image ${index}`,
    )
  }
  const partials = events.filter((e) => e.type === 'image_generation.partial_image')
  for (const partial of partials) {
    const meta = await sharp(Buffer.from(partial.b64_json as string, 'base64')).metadata()
    t.same([meta.format, meta.width, meta.height], ['png', 64, 64])
  }
  const final = events.find((e) => e.type === 'image_generation.completed' && e.image_index === 0)?.b64_json
  t.not(partials[0]?.b64_json, final, 'a preview is not the final image')
})

t.test('partial_images is 0 to 3, and background cannot be transparent', async (t) => {
  const scripted = new ScriptedEngineClient()
  const { base } = await serve(t, scripted)
  for (const [body, param] of [
    [{ prompt: 'x', partial_images: 4 }, 'partial_images'],
    [{ prompt: 'x', background: 'transparent' }, 'background'],
  ] as const) {
    const res = await generate(base, body)
    t.equal(res.status, 400)
    t.equal(res.json.error?.param, param)
  }
  const ok = await generate(base, { prompt: 'x', partial_images: 3, stream: false, background: 'opaque' })
  t.equal(ok.status, 200, 'the limits themselves are accepted')
  t.same(
    scripted.imageCalls.map((c) => c.request.partialImages),
    [0],
    'partial images only in a stream',
  )
})

t.test('a client that leaves mid-generation frees every sequence and denoise job', async (t) => {
  const { base } = await serve(t, engine)
  const controller = new AbortController()
  const res = await fetch(`${base}/v1/images/generations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'A long one', n: 3, stream: true }),
    signal: controller.signal,
  })
  const reader = res.body?.getReader()
  await reader?.read()
  // The worker reports its gauges once the abort has dropped the request (token phase or denoising).
  const freed = events.next('gauges', (g) => g.running === 0)
  controller.abort()
  await freed
  t.same(await engine.engineStats(), IDLE_STATS)
})
