/** A server on a chat-only export: chat works; image generation is refused with a clear 400 before any work. */
import t from 'tap'
import { chatOnlyModelDir } from '../helpers/tiny-model.js'
import { hello, MODEL, serve, tinyEngine } from './serve.js'

t.test('chat completes; /v1/images/generations answers model_capability_missing', async (t) => {
  const engine = await tinyEngine(t, { modelDir: await chatOnlyModelDir(t) })
  t.equal(engine.imageCapabilities, undefined)
  const { base, post } = await serve(t, engine)

  const chat = await post(hello())
  t.equal(chat.status, 200)
  t.equal(((await chat.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens, 4)

  for (const stream of [false, true]) {
    const res = await fetch(`${base}/v1/images/generations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, prompt: 'A boat', stream }) })
    t.equal(res.status, 400, `stream: ${stream}`)
    t.same(await res.json(), {
      error: {
        message: `The model '${MODEL}' does not generate images: its export has no image decoder (dit.onnx, vae_decoder.onnx).`,
        type: 'invalid_request_error',
        param: 'model',
        code: 'model_capability_missing',
      },
    })
  }
  t.same(await engine.engineStats(), { running: 0, waiting: 0, kvUsage: 0, kvSequences: 0, engineSequences: 0, denoiseJobs: 0 }, 'nothing was admitted')
})
