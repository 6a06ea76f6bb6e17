/** A server on a chat-only export: chat works; image generation is refused with a clear 400 before any work. */
import t from 'tap'
import { ScriptedEngineClient } from '../helpers/scripted-engine-client.js'
import { chatOnlyModelDir } from '../helpers/tiny-model.js'
import { hello, MODEL, serve, tinyEngine } from './serve.js'
import { IDLE_STATS } from '../helpers/idle-stats.js'

const REFUSED = {
  error: {
    message: `The model '${MODEL}' does not generate images: its export has no image decoder (dit.onnx, vae_decoder.onnx).`,
    type: 'invalid_request_error',
    param: 'model',
    code: 'model_capability_missing',
  },
}

const generateImage = (base: string, stream: boolean) =>
  fetch(`${base}/v1/images/generations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, prompt: 'A boat', stream }),
  })

t.test(
  'without image capabilities /v1/images/generations answers model_capability_missing, streamed or not, before any engine call',
  async (t) => {
    const engine = new ScriptedEngineClient({ imageCapabilities: undefined })
    const { base, post } = await serve(t, engine)
    t.equal((await post(hello())).status, 200, 'chat completes')
    for (const stream of [false, true]) {
      const res = await generateImage(base, stream)
      t.equal(res.status, 400, `stream: ${stream}`)
      t.match(res.headers.get('content-type'), /^application\/json/)
      t.same(await res.json(), REFUSED)
    }
    t.same(
      [engine.imageCalls.length, engine.reservations.length, engine.calls.length],
      [0, 1, 1],
      'only the chat request reached the engine',
    )
  },
)

t.test('the real chat-only export: the engine reports no image capabilities, and chat completes', async (t) => {
  const engine = await tinyEngine(t, { modelDir: await chatOnlyModelDir(t) })
  t.equal(engine.imageCapabilities, undefined)
  const { base, post } = await serve(t, engine)
  const chat = await post(hello())
  t.equal(chat.status, 200)
  t.equal(((await chat.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens, 4)
  const res = await generateImage(base, false)
  t.same([res.status, await res.json()], [400, REFUSED])
  t.same(await engine.engineStats(), IDLE_STATS, 'nothing was admitted')
})
