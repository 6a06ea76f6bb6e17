/**
 * `POST /v1/completions` through the official SDK on the tiny model: text and
 * token-id prompts, several prompts with n choices, echo, legacy logprobs,
 * scoring a prompt with max_tokens 0, streaming, and the 400s.
 */
import t from 'tap'
import { MODEL, serve, tinyEngine } from './serve.js'

const engine = await tinyEngine(t)
const PROMPT = 'The quick brown fox'

t.test('a text prompt: text_completion with max_tokens tokens, usage counted', async (t) => {
  const { openai } = await serve(t, engine)
  const c = await openai.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 5, temperature: 0 })
  t.equal(c.object, 'text_completion')
  t.match(c.id, /^cmpl-[0-9a-f]{32}$/)
  t.equal(c.choices.length, 1)
  t.match(c.choices[0], { index: 0, logprobs: null, finish_reason: 'length', text: String })
  t.equal(c.usage?.completion_tokens, 5)
  t.equal(c.usage?.total_tokens, (c.usage?.prompt_tokens ?? 0) + 5)
  const again = await openai.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 5, temperature: 0 })
  t.equal(again.choices[0]?.text, c.choices[0]?.text, 'greedy is deterministic')
})

t.test('scoring: echo + logprobs + max_tokens 0 gives every prompt token its logprob', async (t) => {
  const { openai } = await serve(t, engine)
  const c = await openai.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 0, echo: true, logprobs: 2 })
  const choice = c.choices[0]
  t.equal(choice?.text, PROMPT, 'the prompt alone')
  t.equal(choice?.finish_reason, 'length')
  t.equal(c.usage?.completion_tokens, 0)
  const lp = choice?.logprobs
  t.equal(lp?.tokens?.length, c.usage?.prompt_tokens, 'one entry per prompt token')
  t.equal(lp?.tokens?.join(''), PROMPT)
  t.equal(lp?.token_logprobs?.[0], null)
  t.equal(lp?.top_logprobs?.[0], null)
  for (const v of lp?.token_logprobs?.slice(1) ?? []) t.ok(typeof v === 'number' && v <= 0)
  for (const top of lp?.top_logprobs?.slice(1) ?? [])
    t.ok(Object.keys(top ?? {}).length >= 1 && Object.keys(top ?? {}).length <= 2)
  let offset = 0
  lp?.tokens?.forEach((tok, i) => {
    t.equal(lp.text_offset?.[i], offset)
    offset += tok.length
  })
})

t.test('echo then generation: the text starts with the prompt; the logprobs run on through the answer', async (t) => {
  const { openai } = await serve(t, engine)
  const plain = await openai.completions.create({
    model: MODEL,
    prompt: PROMPT,
    max_tokens: 4,
    temperature: 0,
    logprobs: 0,
  })
  const echoed = await openai.completions.create({
    model: MODEL,
    prompt: PROMPT,
    max_tokens: 4,
    temperature: 0,
    logprobs: 0,
    echo: true,
  })
  t.equal(echoed.choices[0]?.text, PROMPT + (plain.choices[0]?.text ?? ''))
  const prompt = echoed.usage?.prompt_tokens ?? 0
  t.same(echoed.choices[0]?.logprobs?.tokens?.slice(prompt), plain.choices[0]?.logprobs?.tokens)
  const scored = echoed.choices[0]?.logprobs?.token_logprobs?.slice(prompt) ?? []
  // Within float tolerance: the plain request's prompt may come from the prefix cache, the scored one is computed whole.
  plain.choices[0]?.logprobs?.token_logprobs?.forEach((v, i) =>
    t.ok(Math.abs((v ?? 0) - (scored[i] ?? 1)) < 1e-4, `token ${i}: ${v} vs ${scored[i]}`),
  )
  t.same(
    plain.choices[0]?.logprobs?.text_offset,
    [0, 1, 2, 3].map((i) => (plain.choices[0]?.logprobs?.tokens ?? []).slice(0, i).join('').length),
  )
})

t.test('token-id prompts and several prompts: choices p × n + i, usage summed', async (t) => {
  const { openai } = await serve(t, engine)
  const ids = await openai.completions.create({ model: MODEL, prompt: [72, 101, 108], max_tokens: 0, echo: true })
  t.equal(ids.usage?.prompt_tokens, 3)
  const many = await openai.completions.create({
    model: MODEL,
    prompt: [
      [72, 101, 108],
      [72, 101],
    ],
    n: 2,
    max_tokens: 3,
    temperature: 1,
    seed: 3,
  })
  t.same(
    many.choices.map((c) => c.index),
    [0, 1, 2, 3],
  )
  t.equal(many.usage?.completion_tokens, 12)
  t.equal(many.usage?.prompt_tokens, 5)
  const texts = await openai.completions.create({
    model: MODEL,
    prompt: ['Hello', 'Hello'],
    max_tokens: 3,
    temperature: 0,
  })
  t.equal(texts.choices[0]?.text, texts.choices[1]?.text, 'the same prompt twice, the same greedy answer')
  t.same(
    texts.choices.map((c) => c.index),
    [0, 1],
  )
})

t.test('streamed: the chunks join into the whole answer, echo first', async (t) => {
  const { openai } = await serve(t, engine)
  const whole = await openai.completions.create({
    model: MODEL,
    prompt: PROMPT,
    max_tokens: 6,
    temperature: 0,
    echo: true,
  })
  const stream = await openai.completions.create({
    model: MODEL,
    prompt: PROMPT,
    max_tokens: 6,
    temperature: 0,
    echo: true,
    stream: true,
    stream_options: { include_usage: true },
  })
  const texts: string[] = []
  let finish: string | null | undefined
  let usage: unknown
  for await (const chunk of stream) {
    t.equal(chunk.object, 'text_completion')
    for (const c of chunk.choices) {
      texts.push(c.text)
      finish = c.finish_reason ?? finish
    }
    if (chunk.usage) usage = chunk.usage
  }
  t.equal(texts[0], PROMPT, 'the echoed prompt comes first')
  t.equal(texts.join(''), whole.choices[0]?.text)
  t.equal(finish, 'length')
  t.same(usage, whole.usage)
})

t.test('bad requests are 400s naming their parameter, before any stream', async (t) => {
  const { post, base } = await serve(t, engine)
  const send = (body: object) =>
    fetch(`${base}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, ...body }),
    })
  const cases: Array<{ body: object; param: string; code: string; message?: RegExp }> = [
    { body: { prompt: 'x', suffix: 'y' }, param: 'suffix', code: 'invalid_value', message: /does not insert text/ },
    { body: { prompt: 'x', n: 1, best_of: 2 }, param: 'best_of', code: 'invalid_value' },
    { body: { prompt: '' }, param: 'prompt', code: 'invalid_prompt', message: /the prompt is empty/ },
    {
      body: { prompt: [1, 9999999] },
      param: 'prompt',
      code: 'invalid_prompt',
      message: /prompt token 1 is 9999999, not a text token id/,
    },
    { body: { prompt: 'x', max_tokens: 100000 }, param: 'prompt', code: 'context_length_exceeded' },
    { body: { prompt: 'x', logprobs: 21 }, param: 'logprobs', code: 'invalid_value' },
    { body: { prompt: 'x', messages: [] }, param: 'messages', code: 'unknown_parameter' },
    { body: {}, param: 'prompt', code: 'missing_required_parameter' },
  ]
  for (const c of cases) {
    const res = await send({ ...c.body, stream: true })
    t.equal(res.status, 400, JSON.stringify(c.body))
    const error = ((await res.json()) as { error: { param: string; code: string; message: string } }).error
    t.equal(error.param, c.param, JSON.stringify(c.body))
    t.equal(error.code, c.code)
    if (c.message !== undefined) t.match(error.message, c.message)
  }
  t.equal(
    (await post({ model: MODEL, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2 })).status,
    200,
    'the engine is still healthy',
  )
})
