/**
 * `response_format` through the official SDK on the tiny model: JSON-schema
 * answers parse and validate, streamed and not; `json_object` gives an
 * object; bad formats are 400s naming `response_format` before any stream;
 * the constrained requests and their mask time reach /metrics.
 */
import { Ajv } from 'ajv'
import t from 'tap'
import { createMetrics } from '../../src/server/metrics.js'
import { MODEL, serve, tinyEngine } from './serve.js'

const metrics = createMetrics({ processMetrics: false })
const engine = await tinyEngine(t, { observer: metrics.observer })

const PERSON = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 6 },
    age: { type: 'integer', minimum: 0, maximum: 120 },
    role: { enum: ['admin', 'user'] },
  },
  required: ['name', 'age', 'role'],
  additionalProperties: false,
}
const validPerson = new Ajv().compile(PERSON)
const personFormat = { type: 'json_schema' as const, json_schema: { name: 'person', schema: PERSON, strict: true } }
const ask = {
  model: MODEL,
  messages: [{ role: 'user' as const, content: 'Who is on call?' }],
  max_tokens: 80,
  temperature: 1,
}

t.test('json_schema through the SDK: the answer parses and validates, for several seeds', async (t) => {
  const { openai } = await serve(t, engine)
  for (const seed of [1, 2, 3]) {
    const completion = await openai.chat.completions.create({ ...ask, seed, response_format: personFormat })
    const choice = completion.choices[0]
    t.equal(choice?.finish_reason, 'stop')
    const parsed = JSON.parse(choice?.message.content ?? '') as unknown
    t.ok(validPerson(parsed), `seed ${seed}: ${choice?.message.content}`)
  }
})

t.test("the SDK's parse helper gets the parsed object", async (t) => {
  const { openai } = await serve(t, engine)
  const completion = await openai.chat.completions.parse({ ...ask, seed: 4, response_format: personFormat })
  const message = completion.choices[0]?.message
  t.ok(validPerson(message?.parsed), JSON.stringify(message?.parsed))
  t.same(message?.parsed, JSON.parse(message?.content ?? ''))
})

t.test('streamed: the deltas join into the same JSON as the whole answer', async (t) => {
  const { openai } = await serve(t, engine)
  for (const seed of [5, 6]) {
    const whole = await openai.chat.completions.create({ ...ask, seed, response_format: personFormat })
    const stream = await openai.chat.completions.create({ ...ask, seed, response_format: personFormat, stream: true })
    let text = ''
    let finish: string | null | undefined
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? ''
      finish = chunk.choices[0]?.finish_reason ?? finish
    }
    t.equal(text, whole.choices[0]?.message.content)
    t.equal(finish, 'stop')
    t.ok(validPerson(JSON.parse(text)), text)
  }
})

t.test('json_object: n choices, each an object', async (t) => {
  const { openai } = await serve(t, engine)
  const completion = await openai.chat.completions.create({
    ...ask,
    seed: 9,
    n: 2,
    max_tokens: 400,
    response_format: { type: 'json_object' },
  })
  t.equal(completion.choices.length, 2)
  for (const choice of completion.choices) {
    if (choice.finish_reason === 'stop')
      t.type(JSON.parse(choice.message.content ?? ''), 'object', choice.message.content ?? '')
    else t.match(choice.message.content, /^\{/, 'out of tokens inside the object')
  }
})

t.test('bad formats are 400s naming response_format, before any stream starts', async (t) => {
  const { post } = await serve(t, engine)
  const cases: Array<{ format: unknown; param: string; code: string; message: RegExp }> = [
    {
      format: {
        type: 'json_schema',
        json_schema: { name: 'x', schema: { type: 'object', properties: { a: { type: 'no-such-type' } } } },
      },
      param: 'response_format',
      code: 'invalid_value',
      message: /^the JSON schema cannot be used for constrained decoding: \S/,
    },
    {
      format: { type: 'json_schema', json_schema: { name: 'x', schema: { $ref: '#/$defs/missing' } } },
      param: 'response_format',
      code: 'invalid_value',
      message: /^the JSON schema cannot be used for constrained decoding: \S/,
    },
    {
      format: { type: 'json_schema' },
      param: 'response_format',
      code: 'missing_required_parameter',
      message: /json_schema/,
    },
    {
      format: { type: 'json_schema', json_schema: { name: 'has space', schema: {} } },
      param: 'response_format.json_schema.name',
      code: 'invalid_value',
      message: /name/,
    },
    { format: { type: 'yaml' }, param: 'response_format.type', code: 'invalid_value', message: /type/ },
  ]
  for (const c of cases) {
    for (const stream of [false, true]) {
      const res = await post({ ...ask, stream, response_format: c.format })
      t.equal(res.status, 400, JSON.stringify(c.format))
      t.match(res.headers.get('content-type'), /^application\/json/, 'a JSON error, not an event stream')
      const body = (await res.json()) as { error: { param: string; code: string; message: string; type: string } }
      t.match(
        body.error,
        { param: c.param, code: c.code, type: 'invalid_request_error', message: c.message },
        JSON.stringify(c.format),
      )
    }
  }
})

t.test('constrained requests and their mask time reach /metrics', async (t) => {
  const { openai, base } = await serve(t, engine, { metrics })
  const read = async () => (await (await fetch(`${base}/metrics`)).text()).split('\n')
  const value = (lines: string[], name: string) =>
    Number(
      lines
        .find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
        ?.split(' ')
        .at(-1) ?? Number.NaN,
    )
  const before = await read()
  await openai.chat.completions.create({ ...ask, seed: 7, response_format: personFormat })
  await openai.chat.completions.create({ ...ask, seed: 7, max_tokens: 3 })
  const after = await read()
  t.equal(
    value(after, 'kelix_constrained_requests_total') - value(before, 'kelix_constrained_requests_total'),
    1,
    'one constrained request',
  )
  t.ok(
    value(after, 'kelix_grammar_mask_seconds_count') > value(before, 'kelix_grammar_mask_seconds_count'),
    'steps with masks are observed',
  )
})
