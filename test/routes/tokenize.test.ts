/**
 * `/tokenize` and `/detokenize`: the counts agree with what generation
 * reports as prompt tokens (text, chat turns, an image's positions), and ids
 * go back to their text.
 */
import t from 'tap'
import { patternPng } from '../helpers/images.js'
import { MODEL, serve, tinyEngine } from './serve.js'

const engine = await tinyEngine(t)
const png = await patternPng(64, 48)
const dataUrl = `data:image/png;base64,${Buffer.from(png).toString('base64')}`

async function postJson(
  base: string,
  path: string,
  body: object,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

t.test('a prompt: the count completions reports, and the ids back to the text', async (t) => {
  const { base, openai } = await serve(t, engine)
  const prompt = 'Tokens per second, please.'
  const tok = await postJson(base, '/tokenize', { model: MODEL, prompt })
  t.equal(tok.status, 200)
  const scored = await openai.completions.create({ model: MODEL, prompt, max_tokens: 0, echo: true })
  t.equal(tok.body.count, scored.usage?.prompt_tokens)
  t.equal((tok.body.tokens as number[]).length, tok.body.count)
  t.equal(tok.body.image_positions, 0)
  t.equal(tok.body.max_model_len, engine.maxContext)
  const again = await openai.completions.create({
    model: MODEL,
    prompt: tok.body.tokens as number[],
    max_tokens: 0,
    echo: true,
  })
  t.equal(again.choices[0]?.text, prompt, 'the ids are the prompt')
  const detok = await postJson(base, '/detokenize', { model: MODEL, tokens: tok.body.tokens })
  t.same(detok, { status: 200, body: { prompt } })
})

t.test('chat messages with an image: the count chat completions reports, image positions included', async (t) => {
  const { base, openai } = await serve(t, engine)
  const messages = [
    { role: 'system' as const, content: 'Be brief.' },
    {
      role: 'user' as const,
      content: [
        { type: 'image_url' as const, image_url: { url: dataUrl } },
        { type: 'text' as const, text: 'What is it?' },
      ],
    },
  ]
  const tok = await postJson(base, '/tokenize', { model: MODEL, messages })
  t.equal(tok.status, 200)
  const chat = await openai.chat.completions.create({ model: MODEL, messages, max_tokens: 1 })
  t.equal(tok.body.count, chat.usage?.prompt_tokens)
  t.ok((tok.body.image_positions as number) > 0, `${tok.body.image_positions} image positions`)
  const without = await postJson(base, '/tokenize', { model: MODEL, messages, add_generation_prompt: false })
  t.ok((without.body.count as number) < (tok.body.count as number), 'without the assistant turn opened')
})

t.test('bad input: 400s naming the field, 404 for another model', async (t) => {
  const { base } = await serve(t, engine)
  const bad = await postJson(base, '/detokenize', { model: MODEL, tokens: [1, 99999999] })
  t.equal(bad.status, 400)
  t.match(bad.body.error, {
    param: 'tokens',
    code: 'invalid_prompt',
    message: /prompt token 1 is 99999999, not a text token id/,
  })
  const empty = await postJson(base, '/tokenize', { model: MODEL, prompt: '' })
  t.equal(empty.status, 400)
  t.match(empty.body.error, { param: 'prompt', code: 'invalid_prompt' })
  const other = await postJson(base, '/tokenize', { model: 'gpt-4o', prompt: 'x' })
  t.equal(other.status, 404)
  t.same(await postJson(base, '/detokenize', { model: MODEL, tokens: [] }), { status: 200, body: { prompt: '' } })
})
