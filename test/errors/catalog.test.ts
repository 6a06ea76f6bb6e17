/** The one error catalog: bodies, statuses, Retry-After, the prompt field, and the thread crossing. */
import t from 'tap'
import { ERRORS, type ErrorCode } from '../../src/errors/catalog.js'
import { asKelixError, KelixError } from '../../src/errors/kelix-error.js'
import { errorBody, errorStatus, retryAfterSeconds } from '../../src/http/error-body.js'
import { engineCall } from '../../src/routes/generation-call.js'

t.test('the body carries the catalog type and the OpenAI code, the param only when there is one', async (t) => {
  const sampling = new KelixError('invalid_value', 'top_p must be in (0, 1], got 0', { param: 'top_p' })
  t.strictSame(errorBody(sampling), {
    error: {
      message: 'top_p must be in (0, 1], got 0',
      type: 'invalid_request_error',
      param: 'top_p',
      code: 'invalid_value',
    },
  })
  t.equal(errorStatus(sampling), 400)
  const full = new KelixError('queue_tokens_full', undefined, { retryAfterSeconds: 3 })
  t.strictSame(errorBody(full), {
    error: {
      message: 'the waiting queue holds too many tokens',
      type: 'rate_limit_error',
      param: null,
      code: 'rate_limit_exceeded',
    },
  })
  t.equal(errorStatus(full), 429)
  t.equal(retryAfterSeconds(full), 3)
  t.equal(errorBody(new KelixError('draining')).error.code, 'server_shutting_down')
  t.equal(errorBody(new KelixError('engine_failed')).error.code, 'server_error')
})

t.test('Retry-After: 1 by default on a 429 or 503, never on other statuses', async (t) => {
  t.equal(retryAfterSeconds(new KelixError('queue_full')), 1)
  t.equal(retryAfterSeconds(new KelixError('engine_unavailable')), 1)
  t.equal(retryAfterSeconds(new KelixError('timeout', undefined, { retryAfterSeconds: 5 })), undefined)
  t.equal(retryAfterSeconds(new KelixError('invalid_value')), undefined)
})

t.test('a client-visible code is lower case with a 4xx or 5xx; an operator code is upper case', async (t) => {
  for (const [code, spec] of Object.entries(ERRORS)) {
    t.ok(spec.status >= 400 && spec.status < 600, `${code} has an error status`)
    if (code === code.toUpperCase()) t.equal(spec.status, 500, `${code} is the server's own`)
    else t.match(code, /^[a-z_]+$/, `${code} is an OpenAI-style code`)
  }
  t.equal(ERRORS.invalid_value.status, 400)
  t.equal(ERRORS.request_too_large.status, 413)
})

t.test('the file prefixes the message and stays a field', async (t) => {
  const err = new KelixError('CHECKPOINT_KEY_MISSING', 'no tensor model.norm.weight', { file: 'model.safetensors' })
  t.equal(err.message, 'model.safetensors: no tensor model.norm.weight')
  t.equal(err.fields.file, 'model.safetensors')
  t.equal(new KelixError('MODEL_DIR_MISSING').message, 'the model directory does not exist')
})

t.test('an error crosses the thread boundary with its code and fields', async (t) => {
  const err = new KelixError('image_too_large', 'the image is 5000×5000 = 25000000 pixels', { limit: 16_000_000 })
  const back = KelixError.fromWire(structuredClone(err.toWire()))
  t.ok(back instanceof KelixError)
  t.equal(back.code, 'image_too_large')
  t.equal(back.message, err.message)
  t.strictSame(back.fields, { limit: 16_000_000 })
  t.equal(asKelixError(new Error('boom'), 'engine_failed').code, 'engine_failed')
  t.equal(asKelixError(err, 'engine_failed'), err)
})

t.test("a refusal about the prompt names the route's prompt field unless it names its own", async (t) => {
  const refuse = (code: ErrorCode, param?: string) => () =>
    Promise.reject(new KelixError(code, 'no', param === undefined ? {} : { param }))
  await t.rejects(engineCall('input', refuse('context_length_exceeded')), {
    code: 'context_length_exceeded',
    fields: { param: 'input' },
  })
  await t.rejects(engineCall('prompt', refuse('invalid_image', 'messages[0].content[1]')), {
    code: 'invalid_image',
    fields: { param: 'messages[0].content[1]' },
  })
  const queue = await engineCall('messages', refuse('queue_full')).catch((err: KelixError) => err)
  t.strictSame(queue.fields, {}, 'a refusal not about the prompt gets no param')
})
