/**
 * Constrained decoding on the random tiny model, whose free output is noise:
 * every answer in a response format parses and validates against its schema
 * (Ajv), for several seeds; constrained and free sequences batched together
 * give each the tokens it gives alone; a schema the grammar engine cannot
 * compile is RESPONSE_FORMAT_INVALID.
 */
import { Ajv } from 'ajv'
import t from 'tap'
import { Engine } from '../../src/engine/engine.js'
import { KelixError } from '../../src/errors/kelix-error.js'
import { loadModel, type KelixModel } from '../../src/engine/model.js'
import { generateAll, type OfflineRequest } from '../../src/engine/offline.js'
import type { ResponseFormat } from '../../src/engine/types.js'
import { options, userTurn } from '../helpers/engine.js'
import { tinyModelDir } from '../helpers/tiny-model.js'

let model: KelixModel
t.before(async () => {
  model = await loadModel(await tinyModelDir(), { intraOpThreads: 1 })
})
t.teardown(() => model?.dispose())

const schemas: Record<string, Record<string, unknown>> = {
  flat: {
    type: 'object',
    properties: { ok: { type: 'boolean' }, n: { type: 'integer', minimum: 0, maximum: 99 } },
    required: ['ok', 'n'],
    additionalProperties: false,
  },
  enumerated: {
    type: 'object',
    properties: { color: { enum: ['red', 'green', 'blue'] }, size: { type: 'string', enum: ['S', 'M', 'L'] } },
    required: ['color', 'size'],
    additionalProperties: false,
  },
  nested: {
    type: 'object',
    properties: {
      tags: { type: 'array', items: { enum: ['a', 'b', 'c'] }, minItems: 1, maxItems: 3 },
      inner: {
        type: 'object',
        properties: { on: { type: 'boolean' }, level: { type: 'integer', minimum: -5, maximum: 5 } },
        required: ['on', 'level'],
        additionalProperties: false,
      },
    },
    required: ['tags', 'inner'],
    additionalProperties: false,
  },
  strings: {
    type: 'object',
    properties: { name: { type: 'string', maxLength: 6 }, code: { type: 'string', pattern: '^[a-z]{2,4}$' } },
    required: ['name', 'code'],
    additionalProperties: false,
  },
  array: { type: 'array', items: { type: 'integer', minimum: 1, maximum: 9 }, minItems: 2, maxItems: 4 },
}

const ajv = new Ajv({ strict: false })

async function answer(engine: Engine, format: ResponseFormat, seed: number, id = `s${seed}`): Promise<OfflineRequest> {
  const prompt = await engine.preparePrompt(userTurn('Describe the thing as JSON.'), { addGenerationPrompt: true })
  return {
    id,
    prompt,
    options: {
      ...options({ maxNewTokens: 120, sampling: { temperature: 1, seed } }),
      constraint: await engine.constraintFor(format),
    },
  }
}

for (const [name, schema] of Object.entries(schemas)) {
  t.test(`json_schema ${name}: every answer parses and validates`, async (t) => {
    const engine = new Engine(model)
    const validate = ajv.compile(schema)
    for (const seed of [1, 2, 3, 4]) {
      const result = (
        await generateAll(engine, [await answer(engine, { type: 'json_schema', schema, strict: true }, seed)])
      ).get(`s${seed}`)
      t.equal(result?.finishReason, 'stop', `seed ${seed} ends with the grammar (its text: ${result?.text})`)
      const parsed = JSON.parse(result?.text ?? '') as unknown
      t.ok(validate(parsed), `seed ${seed}: ${result?.text} validates (${ajv.errorsText(validate.errors)})`)
      t.equal(result?.text, JSON.stringify(parsed), 'compact JSON: no whitespace between elements')
    }
  })
}

t.test('json_object: an object, and the answer ends only where the JSON does', async (t) => {
  const engine = new Engine(model)
  for (const seed of [5, 6, 7]) {
    const request = await answer(engine, { type: 'json_object' }, seed)
    request.options = { ...request.options, maxNewTokens: 400 }
    const result = (await generateAll(engine, [request])).get(`s${seed}`)
    if (result?.finishReason === 'stop') t.type(JSON.parse(result.text), 'object', `seed ${seed}: ${result.text}`)
    else t.match(result?.text, /^\{/, `seed ${seed} ran out of tokens inside the object it opened`)
  }
})

t.test('constrained and free sequences in one batch give each the tokens it gives alone', async (t) => {
  const engine = new Engine(model)
  const requests = async () => {
    const free = await engine.preparePrompt(userTurn('Say anything.'), { addGenerationPrompt: true })
    return [
      await answer(
        engine,
        { type: 'json_schema', schema: schemas.flat as Record<string, unknown>, strict: true },
        11,
        'flat',
      ),
      { id: 'free-greedy', prompt: free, options: options({ maxNewTokens: 16 }) },
      await answer(
        engine,
        { type: 'json_schema', schema: schemas.nested as Record<string, unknown>, strict: true },
        12,
        'nested',
      ),
      {
        id: 'free-sampled',
        prompt: free,
        options: options({ maxNewTokens: 16, sampling: { temperature: 1, seed: 13 } }),
      },
    ]
  }
  const batched = await generateAll(engine, await requests())
  for (const request of await requests()) {
    const alone = (await generateAll(engine, [request])).get(request.id)
    t.same(batched.get(request.id)?.tokenIds, alone?.tokenIds, request.id)
  }
  t.ok(engine.timings.maskMs > 0, 'the mask time is counted')
})

t.test(
  'a schema the grammar engine cannot compile is RESPONSE_FORMAT_INVALID, and nothing is left behind',
  async (t) => {
    const engine = new Engine(model)
    for (const schema of [
      { $ref: '#/$defs/missing' },
      { type: 'object', properties: { a: { type: 'no-such-type' } } },
    ]) {
      const error = await engine.constraintFor({ type: 'json_schema', schema, strict: true }).then(
        () => undefined,
        (err: unknown) => err,
      )
      t.type(error, KelixError)
      t.equal((error as KelixError).code, 'invalid_value')
      t.match((error as KelixError).message, /^the JSON schema cannot be used for constrained decoding: \S/)
    }
    t.equal(engine.size, 0)
  },
)

t.test('a schema with a feature the grammar engine would not enforce is refused, naming it', async (t) => {
  const engine = new Engine(model)
  const error = await engine
    .constraintFor({
      type: 'json_schema',
      schema: { type: 'object', properties: { tags: { type: 'array', items: { type: 'string' }, uniqueItems: true } } },
      strict: true,
    })
    .then(
      () => undefined,
      (err: unknown) => err,
    )
  t.equal((error as KelixError).code, 'invalid_value')
  t.equal((error as KelixError).message, "the grammar engine cannot enforce 'uniqueItems' (at #/properties/tags)")
})
