/**
 * `POST /v1/responses` through the official SDK on the tiny model: text and
 * image input, instructions, the SDK's `output_text`, the streamed events in
 * their order, `text.format` JSON schemas, and the refusals (storage, tools).
 */
import { Ajv } from 'ajv'
import t from 'tap'
import { patternPng } from '../helpers/images.js'
import { ScriptedEngineClient } from '../helpers/scripted-engine-client.js'
import { MODEL, serve, tinyEngine } from './serve.js'

const engine = await tinyEngine(t)
const png = await patternPng(48, 48)
const dataUrl = `data:image/png;base64,${Buffer.from(png).toString('base64')}`

t.test("text input: one assistant message, the SDK's output_text, usage", async (t) => {
  const { openai } = await serve(t, engine)
  const r = await openai.responses.create({
    model: MODEL,
    input: 'Hello there',
    max_output_tokens: 6,
    temperature: 0,
    store: false,
  })
  t.equal(r.object, 'response')
  t.match(r.id, /^resp_[0-9a-f]{32}$/)
  t.equal(r.status, 'incomplete', 'max_output_tokens cut it')
  t.same(r.incomplete_details, { reason: 'max_output_tokens' })
  t.equal(r.output.length, 1)
  t.match(r.output[0], { type: 'message', role: 'assistant', status: 'completed', id: /^msg_/ })
  t.equal(r.output_text, (r.output[0] as { content: Array<{ text: string }> }).content[0]?.text)
  t.equal(r.usage?.output_tokens, 6)
  t.equal(r.usage?.total_tokens, (r.usage?.input_tokens ?? 0) + 6)
  t.equal((r as unknown as { store: boolean }).store, false)
})

t.test('the same conversation gives the same prompt as chat completions: instructions, items, an image', async (t) => {
  const { openai } = await serve(t, engine)
  const r = await openai.responses.create({
    model: MODEL,
    instructions: 'Be brief.',
    input: [
      {
        role: 'user',
        content: [
          { type: 'input_image', image_url: dataUrl, detail: 'auto' },
          { type: 'input_text', text: 'What is it?' },
        ],
      },
    ],
    max_output_tokens: 4,
    temperature: 0,
  })
  const chat = await openai.chat.completions.create({
    model: MODEL,
    messages: [
      { role: 'system', content: 'Be brief.' },
      {
        role: 'user',
        content: [
          { type: 'image_url', image_url: { url: dataUrl } },
          { type: 'text', text: 'What is it?' },
        ],
      },
    ],
    max_tokens: 4,
    temperature: 0,
  })
  t.equal(r.usage?.input_tokens, chat.usage?.prompt_tokens)
  t.equal(r.output_text, chat.choices[0]?.message.content)
})

t.test("streamed: the events in the SDK's order, the deltas join into the text", async (t) => {
  const { openai } = await serve(t, engine)
  const whole = await openai.responses.create({
    model: MODEL,
    input: 'Count with me',
    max_output_tokens: 8,
    temperature: 0,
  })
  const stream = await openai.responses.create({
    model: MODEL,
    input: 'Count with me',
    max_output_tokens: 8,
    temperature: 0,
    stream: true,
  })
  const types: string[] = []
  let text = ''
  const sequence: number[] = []
  for await (const event of stream) {
    types.push(event.type)
    sequence.push(event.sequence_number)
    if (event.type === 'response.output_text.delta') text += event.delta
  }
  const distinct = types.filter((ty, i) => ty !== types[i - 1])
  t.same(distinct, [
    'response.created',
    'response.in_progress',
    'response.output_item.added',
    'response.content_part.added',
    'response.output_text.delta',
    'response.output_text.done',
    'response.content_part.done',
    'response.output_item.done',
    'response.incomplete',
  ])
  t.same(
    sequence,
    sequence.map((_, i) => i),
    'sequence numbers count up from 0',
  )
  t.equal(text, whole.output_text)
  const helper = await openai.responses
    .stream({ model: MODEL, input: 'Count with me', max_output_tokens: 8, temperature: 0 })
    .finalResponse()
  t.equal(helper.output_text, whole.output_text, 'the SDK stream helper assembles the same answer')
})

t.test('text.format json_schema: the output parses and validates', async (t) => {
  const { openai } = await serve(t, engine)
  const schema = {
    type: 'object',
    properties: { ok: { type: 'boolean' }, n: { type: 'integer', minimum: 0, maximum: 9 } },
    required: ['ok', 'n'],
    additionalProperties: false,
  }
  const r = await openai.responses.create({
    model: MODEL,
    input: 'JSON please',
    temperature: 1,
    max_output_tokens: 40,
    text: { format: { type: 'json_schema', name: 'thing', schema, strict: true } },
  })
  t.equal(r.status, 'completed')
  t.ok(new Ajv().compile(schema)(JSON.parse(r.output_text)), r.output_text)
})

t.test('what the server does not keep or do is a 400 naming the parameter', async (t) => {
  const scripted = new ScriptedEngineClient()
  const { base } = await serve(t, scripted)
  const send = async (body: object) => {
    const res = await fetch(`${base}/v1/responses`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, input: 'x', ...body }),
    })
    return {
      status: res.status,
      error: ((await res.json()) as { error: { param: string; code: string; message: string } }).error,
    }
  }
  t.match(await send({ store: true }), {
    status: 400,
    error: { param: 'store', code: 'invalid_value', message: /keeps no responses; send store: false/ },
  })
  t.match(await send({ previous_response_id: 'resp_1' }), {
    status: 400,
    error: { param: 'previous_response_id', message: /keeps no responses/ },
  })
  t.match(await send({ tools: [{ type: 'function', name: 'f' }] }), { status: 400, error: { param: 'tools' } })
  t.match(await send({ input: [{ role: 'assistant', content: [{ type: 'input_image', image_url: dataUrl }] }] }), {
    status: 400,
    error: { param: 'input', message: /images may only be in user items/ },
  })
  t.same(scripted.calls, [], 'none reached the engine')
})
