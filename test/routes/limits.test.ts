/**
 * Refusals only the engine's answer reveals, over HTTP on the tiny model:
 * prompt tokens over the server's limit or the context, images that do not
 * decode or have too many pixels, the request deadline. Model aliases (HTTP
 * alone) on a scripted engine.
 */
import { crc32 } from 'node:zlib'
import t from 'tap'
import { TINY_CONFIG } from '../../src/builder/tiny.js'
import { patternPng } from '../helpers/images.js'
import { ScriptedEngineClient } from '../helpers/scripted-engine-client.js'
import { MODEL, hello, serve, tinyEngine } from './serve.js'
import { IDLE_STATS } from '../helpers/idle-stats.js'

const engine = await tinyEngine(t)

const png = await patternPng(16, 16)
const dataUrl = (bytes: Uint8Array) => `data:image/png;base64,${Buffer.from(bytes).toString('base64')}`
const withImage = (bytes: Uint8Array) =>
  hello({
    messages: [
      {
        role: 'user',
        content: [
          { type: 'image_url', image_url: { url: dataUrl(bytes) } },
          { type: 'text', text: 'What is it?' },
        ],
      },
    ],
  })

/** A PNG whose header claims width × height: a decompression bomb if it were decoded. */
function pngClaiming(width: number, height: number): Uint8Array {
  const bytes = Buffer.from(png)
  bytes.writeUInt32BE(width, 16)
  bytes.writeUInt32BE(height, 20)
  bytes.writeUInt32BE(crc32(bytes.subarray(12, 29)), 29)
  return bytes
}

t.test('a prompt over KELIX_MAX_PROMPT_TOKENS is refused with the numbers, and its sequence freed', async (t) => {
  const { post } = await serve(t, engine, { config: { maxPromptTokens: 20 } })
  const res = await post(hello())
  t.equal(res.status, 400)
  t.same(await res.json(), {
    error: {
      message:
        'The prompt has 35 tokens (0 of them image positions); this server accepts at most 20. Please reduce the length of the messages.',
      type: 'invalid_request_error',
      param: 'messages',
      code: 'context_length_exceeded',
    },
  })
  // The worker refuses before it queues anything, and answers in order: nothing to wait for.
  t.same(await engine.engineStats(), IDLE_STATS)
})

t.test(
  'images the engine cannot decode, and prompts over the context, are 400s naming messages; the engine stays healthy',
  async (t) => {
    const { post } = await serve(t, engine)
    const cases = [
      { name: 'a truncated PNG', body: withImage(png.subarray(0, 60)), code: 'invalid_image', message: undefined },
      {
        name: 'a PNG claiming 100000 × 100000 pixels',
        body: withImage(pngClaiming(100_000, 100_000)),
        code: 'image_too_large',
        message: undefined,
      },
      {
        name: 'a prompt longer than the context',
        body: hello({ messages: [{ role: 'user', content: 'lorem ipsum '.repeat(3000) }], max_tokens: 100 }),
        code: 'context_length_exceeded',
        message:
          /^This model's maximum context length is 4096 tokens\. However, you requested \d+ tokens \(\d+ in the messages, 100 in the completion\)\. Please reduce the length of the messages or completion\.$/,
      },
      {
        name: 'max_tokens as large as the context',
        body: hello({ max_tokens: 4096 }),
        code: 'context_length_exceeded',
        message:
          /^This model's maximum context length is 4096 tokens\. However, you requested \d+ tokens \(\d+ in the messages, 4096 in the completion\)\. Please reduce the length of the messages or completion\.$/,
      },
    ]
    for (const c of cases) {
      const res = await post(c.body)
      t.equal(res.status, 400, `${c.name}: status`)
      const body = (await res.json()) as {
        error: { message: string; type: string; param: string | null; code: string }
      }
      t.same(
        { ...body.error, message: undefined },
        { message: undefined, type: 'invalid_request_error', code: c.code, param: 'messages' },
        `${c.name}: type, code, param`,
      )
      if (c.message !== undefined) t.match(body.error.message, c.message, `${c.name}: message`)
      t.same(Object.keys(body), ['error'], `${c.name}: nothing but the error`)
    }
    t.same(await engine.engineStats(), IDLE_STATS, 'nothing was queued')
    t.equal((await post(hello())).status, 200, 'a good request still succeeds')
  },
)

t.test('a request past its deadline is a 408 before the headers, and an error event after them', async (t) => {
  const { post } = await serve(t, engine, { config: { requestTimeoutMs: 300 } })
  // <|im_end|> banned: a sampled early end would finish the answer before the deadline.
  const endless = { max_tokens: 3000, logit_bias: { [TINY_CONFIG.special_tokens.im_end]: -100 } }
  const res = await post(hello(endless))
  t.equal(res.status, 408)
  t.match(await res.json(), { error: { type: 'timeout_error', code: 'timeout', param: null } })
  const stream = await post(hello({ ...endless, stream: true }))
  t.equal(stream.status, 200)
  const events = (await stream.text()).split('\n\n')
  t.equal(events.at(-2), 'data: [DONE]')
  t.match(JSON.parse(events.at(-3)!.slice(6)), { error: { type: 'timeout_error', code: 'timeout', param: null } })
})

t.test('a model alias is listed under the served id', async (t) => {
  const { base } = await serve(t, new ScriptedEngineClient())
  const res = await fetch(`${base}/v1/models/kelix`)
  t.equal(res.status, 200)
  t.same(await res.json(), { id: MODEL, object: 'model', created: 1700000000, owned_by: 'kelix-serve' })
})
