/** Server-side limits that only the engine's answer reveals: prompt tokens and the request deadline; model aliases. */
import t from 'tap'
import { TINY_CONFIG } from '../../src/builder/tiny.js'
import { MODEL, hello, serve, tinyEngine } from './serve.js'

const engine = await tinyEngine(t)

t.test('a prompt over KELIX_MAX_PROMPT_TOKENS is refused with the numbers, and its sequence freed', async (t) => {
  const { post } = await serve(t, engine, { config: { maxPromptTokens: 20 } })
  const res = await post(hello())
  t.equal(res.status, 400)
  t.same(await res.json(), {
    error: {
      message: 'The prompt has 35 tokens (0 of them image positions); this server accepts at most 20. Please reduce the length of the messages.',
      type: 'invalid_request_error',
      param: 'messages',
      code: 'context_length_exceeded',
    },
  })
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.match(await engine.engineStats(), { running: 0, waiting: 0, engineSequences: 0 })
})

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
  const { base } = await serve(t, engine)
  const res = await fetch(`${base}/v1/models/kelix`)
  t.equal(res.status, 200)
  t.same(await res.json(), { id: MODEL, object: 'model', created: 1700000000, owned_by: 'kelix-serve' })
})
