/**
 * The server on WebGPU end to end (real engine worker, real HTTP, the openai
 * SDK): ready names the provider, a chat streams the same greedy answer as the
 * server on the CPU, and an image is generated. Skips where WebGPU does not load.
 */
import t from 'tap'
import { webgpuSkip } from '../helpers/webgpu.js'
import { MODEL, serve, tinyEngine } from './serve.js'

const skip = await webgpuSkip()

t.test("a chat on WebGPU streams the CPU server's greedy answer; an image is generated", { skip }, async (t) => {
  const gpu = await serve(t, await tinyEngine(t, { executionProviders: ['webgpu'] }))
  const cpu = await serve(t, await tinyEngine(t))
  t.same(await (await fetch(`${gpu.base}/health/ready`)).json(), { status: 'ready', execution_provider: 'webgpu' })

  const request = {
    model: MODEL,
    messages: [{ role: 'user' as const, content: 'Describe a quiet harbour at dawn.' }],
    max_tokens: 24,
    temperature: 0,
  }
  const expected = (await cpu.openai.chat.completions.create(request)).choices[0]?.message.content
  let streamed = ''
  for await (const chunk of await gpu.openai.chat.completions.create({ ...request, stream: true }))
    streamed += chunk.choices[0]?.delta.content ?? ''
  t.equal(streamed, expected)
  t.ok((expected ?? '').length > 0, 'a non-empty answer')

  const image = await gpu.openai.images.generate({ model: MODEL, prompt: 'a red boat', size: '64x64' as never })
  const png = Buffer.from(image.data?.[0]?.b64_json ?? '', 'base64')
  t.same([...png.subarray(1, 4)], [...Buffer.from('PNG')], 'a PNG comes back')
})
