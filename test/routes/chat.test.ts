/**
 * Chat completions through the official `openai` SDK against a real server on
 * a real port and a real engine. The tests share the engine, so each one that
 * counts cached prompt tokens sets up the prefix cache it counts on itself.
 */
import type { ChatCompletionChunk } from 'openai/resources/chat/completions'
import t from 'tap'
import { patternPng } from '../helpers/images.js'
import { MODEL, serve, tinyEngine } from './serve.js'

const engine = await tinyEngine(t)
const user = (content: string) => ({ role: 'user' as const, content })

async function collect(stream: AsyncIterable<ChatCompletionChunk>): Promise<ChatCompletionChunk[]> {
  const chunks: ChatCompletionChunk[] = []
  for await (const chunk of stream) chunks.push(chunk)
  return chunks
}

t.test('a non-streaming completion has the OpenAI shape, with usage and finish reason', async (t) => {
  const { openai } = await serve(t, engine)
  // A system prompt no other test sends: none of this prompt is in the prefix cache.
  const messages = [{ role: 'system' as const, content: 'This test alone says this.' }, user('Hello')]
  const sent = Math.floor(Date.now() / 1000)
  const completion = await openai.chat.completions.create({ model: MODEL, messages, max_tokens: 4, temperature: 0 })
  const answered = Math.ceil(Date.now() / 1000)
  t.match(completion.id, /^chatcmpl-[0-9a-f]{32}$/)
  t.equal(completion.object, 'chat.completion')
  t.equal(completion.model, MODEL)
  t.equal(completion.system_fingerprint, 'fp_test')
  t.ok(
    completion.created >= sent && completion.created <= answered,
    'created: the Unix second the request was answered in',
  )
  t.equal(completion.choices.length, 1)
  const [choice] = completion.choices
  t.same(Object.keys(choice!).sort(), ['finish_reason', 'index', 'logprobs', 'message'])
  t.equal(choice!.index, 0)
  t.equal(choice!.finish_reason, 'length')
  t.equal(choice!.logprobs, null)
  t.same(Object.keys(choice!.message).sort(), ['content', 'refusal', 'role'])
  t.equal(choice!.message.role, 'assistant')
  t.type(choice!.message.content, 'string')
  t.same(completion.usage, {
    prompt_tokens: 40,
    completion_tokens: 4,
    total_tokens: 44,
    prompt_tokens_details: { cached_tokens: 0 },
  })
})

t.test('greedy decoding gives the same answer twice, and an alias names the served model', async (t) => {
  const { openai } = await serve(t, engine)
  const ask = (model: string) =>
    openai.chat.completions.create({ model, messages: [user('Same question')], max_tokens: 12, temperature: 0 })
  const [a, b] = await Promise.all([ask(MODEL), ask('kelix')])
  t.equal(a.choices[0]!.message.content, b.choices[0]!.message.content)
  t.equal(b.model, MODEL)
})

t.test('a stream sends the role chunk, content chunks, a finish chunk with an empty delta, then [DONE]', async (t) => {
  const { openai } = await serve(t, engine)
  const request = { model: MODEL, messages: [user('Stream this')], max_tokens: 8, temperature: 0 }
  const whole = await openai.chat.completions.create(request)
  const chunks = await collect(await openai.chat.completions.create({ ...request, stream: true }))
  const first = chunks[0]!
  t.same(first.choices, [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }])
  const last = chunks.at(-1)!
  t.same(last.choices, [{ index: 0, delta: {}, logprobs: null, finish_reason: 'length' }])
  const middle = chunks.slice(1, -1)
  t.ok(middle.length > 0)
  for (const chunk of middle) {
    t.equal(chunk.choices.length, 1)
    t.same(Object.keys(chunk.choices[0]!.delta), ['content'])
    t.equal(chunk.choices[0]!.finish_reason, null)
  }
  for (const chunk of chunks) {
    t.equal(chunk.id, first.id)
    t.equal(chunk.object, 'chat.completion.chunk')
    t.equal(chunk.model, MODEL)
    t.equal(chunk.system_fingerprint, 'fp_test')
    t.notOk('usage' in chunk, 'no usage field without include_usage')
  }
  t.equal(
    middle.map((c) => c.choices[0]!.delta.content).join(''),
    whole.choices[0]!.message.content,
    'the deltas add up to the non-streamed answer',
  )
})

t.test(
  'include_usage adds one final chunk with no choices and the usage, and usage: null on every earlier chunk',
  async (t) => {
    const { openai } = await serve(t, engine)
    await openai.chat.completions.create({ model: MODEL, messages: [user('Hello')], max_tokens: 1 })
    const chunks = await collect(
      await openai.chat.completions.create({
        model: MODEL,
        messages: [user('Hello')],
        max_tokens: 5,
        stream: true,
        stream_options: { include_usage: true },
      }),
    )
    const last = chunks.at(-1)!
    t.same(last.choices, [])
    t.same(
      last.usage,
      { prompt_tokens: 35, completion_tokens: 5, total_tokens: 40, prompt_tokens_details: { cached_tokens: 32 } },
      'the prompt just sent: 4 whole 8-position chunks reused',
    )
    for (const chunk of chunks.slice(0, -1)) t.equal(chunk.usage, null)
    t.equal(chunks.at(-2)!.choices[0]!.finish_reason, 'length')
  },
)

t.test('n=2 streams both choices, each in order: role, contents, finish', async (t) => {
  const { openai } = await serve(t, engine)
  await openai.chat.completions.create({ model: MODEL, messages: [user('Warm the template up')], max_tokens: 1 })
  const chunks = await collect(
    await openai.chat.completions.create({
      model: MODEL,
      messages: [user('Two answers')],
      max_tokens: 6,
      n: 2,
      seed: 7,
      stream: true,
      stream_options: { include_usage: true },
    }),
  )
  for (const index of [0, 1]) {
    const mine = chunks.filter((c) => c.choices[0]?.index === index).map((c) => c.choices[0]!)
    t.same(mine[0], { index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null })
    t.same(mine.at(-1), { index, delta: {}, logprobs: null, finish_reason: 'length' })
    t.ok(mine.slice(1, -1).every((c) => c.finish_reason === null && typeof c.delta.content === 'string'))
  }
  t.ok(chunks.slice(0, -1).every((c) => c.choices.length === 1))
  t.same(
    chunks.at(-1)!.usage,
    { prompt_tokens: 36, completion_tokens: 12, total_tokens: 48, prompt_tokens_details: { cached_tokens: 16 } },
    'a new question reuses the chunk of system prompt and template',
  )
  const indices = chunks.slice(0, -1).map((c) => c.choices[0]!.index)
  const firstFinish = chunks.findIndex((c) => c.choices[0]?.finish_reason !== null && c.choices.length > 0)
  t.ok(indices.slice(0, firstFinish).includes(1), 'choice 1 streams before choice 0 has finished: interleaved')
})

t.test('n=2 without streaming returns both choices by index', async (t) => {
  const { openai } = await serve(t, engine)
  await openai.chat.completions.create({ model: MODEL, messages: [user('Pair of answers, please')], max_tokens: 1 })
  const completion = await openai.chat.completions.create({
    model: MODEL,
    messages: [user('Pair of answers, please')],
    max_tokens: 3,
    n: 2,
    seed: 1,
  })
  t.same(
    completion.choices.map((c) => c.index),
    [0, 1],
  )
  t.same(
    completion.usage,
    { prompt_tokens: 43, completion_tokens: 6, total_tokens: 49, prompt_tokens_details: { cached_tokens: 40 } },
    'the prompt just sent: 5 whole 8-position chunks reused',
  )
})

t.test('the same seed gives the same sampled answer; another seed gives another', async (t) => {
  const { openai } = await serve(t, engine)
  const ask = (seed: number) =>
    openai.chat.completions.create({
      model: MODEL,
      messages: [user('Surprise me')],
      max_tokens: 16,
      temperature: 1,
      seed,
    })
  const [a, b, c] = await Promise.all([ask(42), ask(42), ask(43)])
  t.equal(a.choices[0]!.message.content, b.choices[0]!.message.content)
  t.not(a.choices[0]!.message.content, c.choices[0]!.message.content)
})

t.test('a stop string ends the answer before it, with finish_reason stop', async (t) => {
  const { openai } = await serve(t, engine)
  const request = { model: MODEL, messages: [user('Say something')], max_tokens: 40, temperature: 0 }
  const full = (await openai.chat.completions.create(request)).choices[0]!.message.content!
  const match = /[A-Za-z]{2}/.exec(full.slice(3))
  t.ok(match, `the greedy answer has two ASCII letters in a row: ${JSON.stringify(full)}`)
  const stop = match![0]
  const stopped = await openai.chat.completions.create({ ...request, stop: [stop, '\u0000never'] })
  t.equal(stopped.choices[0]!.finish_reason, 'stop')
  t.equal(stopped.choices[0]!.message.content, full.slice(0, full.indexOf(stop)))
})

t.test('an image as a data URL is answered, and its positions count as prompt tokens', async (t) => {
  const { openai } = await serve(t, engine)
  const png = Buffer.from(await patternPng(64, 48)).toString('base64')
  const completion = await openai.chat.completions.create({
    model: MODEL,
    max_tokens: 3,
    messages: [
      {
        role: 'user',
        content: [
          { type: 'image_url', image_url: { url: `data:image/png;base64,${png}`, detail: 'low' } },
          { type: 'text', text: 'Hello' },
        ],
      },
    ],
  })
  t.equal(completion.choices[0]!.finish_reason, 'length')
  t.ok(completion.usage!.prompt_tokens > 35, `prompt tokens with the image: ${completion.usage!.prompt_tokens}`)
})

t.test('a multi-turn conversation with system and developer messages is answered', async (t) => {
  const { openai } = await serve(t, engine)
  const completion = await openai.chat.completions.create({
    model: MODEL,
    max_tokens: 3,
    messages: [
      { role: 'system', content: 'Be brief.' },
      { role: 'developer', content: [{ type: 'text', text: 'Answer in English.' }] },
      user('Hi'),
      { role: 'assistant', content: 'Hello!' },
      user('How are you?'),
    ],
  })
  t.equal(completion.choices[0]!.message.role, 'assistant')
  t.ok(completion.usage!.prompt_tokens > 35)
})

t.test('logprobs come in the OpenAI shape: token, logprob, UTF-8 bytes and top alternatives', async (t) => {
  const { openai } = await serve(t, engine)
  const completion = await openai.chat.completions.create({
    model: MODEL,
    messages: [user('Hello')],
    max_tokens: 6,
    temperature: 0,
    logprobs: true,
    top_logprobs: 2,
  })
  const content = completion.choices[0]!.logprobs!.content!
  t.ok(content.length > 0)
  for (const lp of content) {
    t.same(Object.keys(lp).sort(), ['bytes', 'logprob', 'token', 'top_logprobs'])
    // The token's own bytes: they decode to its text, U+FFFD where a token ends inside a character.
    t.equal(new TextDecoder().decode(Uint8Array.from(lp.bytes!)), lp.token)
    t.ok(lp.logprob <= 0)
    t.equal(lp.top_logprobs.length, 2)
    t.ok(lp.top_logprobs[0]!.logprob >= lp.top_logprobs[1]!.logprob)
    t.equal(lp.top_logprobs[0]!.logprob, lp.logprob, 'greedy: the chosen token is the most likely one')
  }
})
