/**
 * Bad requests, each with its exact status, type, code and param, against one
 * server, which is still healthy after all of them. Everything here is refused
 * by the HTTP layer, so a scripted engine stands in for the model; what only
 * the engine refuses (undecodable images, the context) is in limits.test.ts.
 */
import OpenAI from 'openai'
import t from 'tap'
import { ScriptedEngineClient } from '../helpers/scripted-engine-client.js'
import { patternPng } from '../helpers/images.js'
import { MODEL, hello, serve } from './serve.js'

const KEY = 'sk-test-key'
const png = await patternPng(16, 16)
const dataUrl = (bytes: Uint8Array, type = 'image/png') =>
  `data:${type};base64,${Buffer.from(bytes).toString('base64')}`
const withImage = (url: string, detail?: string) =>
  hello({
    messages: [
      {
        role: 'user',
        content: [
          { type: 'image_url', image_url: detail === undefined ? { url } : { url, detail } },
          { type: 'text', text: 'What is it?' },
        ],
      },
    ],
  })
const URL0 = 'messages[0].content[0].image_url.url'

function multipart(fields: Record<string, string | Uint8Array>): FormData {
  const form = new FormData()
  for (const [name, value] of Object.entries(fields)) {
    if (typeof value === 'string') form.append(name, value)
    else form.append(name, new Blob([value], { type: 'image/png' }), `${name}.png`)
  }
  return form
}

interface Case {
  name: string
  body?: unknown
  /** A raw request instead of a JSON body. */
  init?: RequestInit
  status: number
  code: string
  param: string | null
  type?: string
  message?: string | RegExp
}

const CASES: Case[] = [
  {
    name: 'malformed JSON',
    body: '{"model": "kelix-tiny", ',
    status: 400,
    code: 'invalid_request_error',
    param: null,
    message: 'The request body is not valid JSON.',
  },
  {
    name: 'an empty body',
    body: '',
    status: 400,
    code: 'invalid_request_error',
    param: null,
    message: 'The request body is empty; expected a JSON object.',
  },
  {
    name: 'a body that is not an object',
    body: '[1]',
    status: 400,
    code: 'invalid_type',
    param: null,
    message: 'The request body must be a JSON object, but got an array.',
  },
  {
    name: 'no model',
    body: { messages: [{ role: 'user', content: 'Hi' }] },
    status: 400,
    code: 'missing_required_parameter',
    param: 'model',
    message: "Missing required parameter: 'model'.",
  },
  {
    name: 'a model that is not a string',
    body: hello({ model: 5 }),
    status: 400,
    code: 'invalid_type',
    param: 'model',
    message: "Invalid type for 'model': expected a string, but got 5 instead.",
  },
  { name: 'no messages', body: { model: MODEL }, status: 400, code: 'missing_required_parameter', param: 'messages' },
  {
    name: 'messages as a string',
    body: hello({ messages: 'Hi' }),
    status: 400,
    code: 'invalid_type',
    param: 'messages',
    message: "Invalid type for 'messages': expected an array, but got a string instead.",
  },
  {
    name: 'empty messages',
    body: hello({ messages: [] }),
    status: 400,
    code: 'invalid_value',
    param: 'messages',
    message: "Invalid 'messages': expected an array with at least 1 item, but got 0.",
  },
  {
    name: 'a message without a role',
    body: hello({ messages: [{ content: 'Hi' }] }),
    status: 400,
    code: 'missing_required_parameter',
    param: 'messages[0].role',
  },
  {
    name: 'an unknown role',
    body: hello({ messages: [{ role: 'function', content: 'Hi' }] }),
    status: 400,
    code: 'invalid_value',
    param: 'messages[0].role',
    message:
      'Invalid value for \'messages[0].role\': expected one of "system", "developer", "user", "assistant", "tool", but got "function" instead.',
  },
  {
    name: 'content of the wrong type',
    body: hello({ messages: [{ role: 'user', content: 42 }] }),
    status: 400,
    code: 'invalid_type',
    param: 'messages[0].content',
    message: "Invalid type for 'messages[0].content': expected a string or an array, but got 42 instead.",
  },
  {
    name: 'an empty content array',
    body: hello({ messages: [{ role: 'user', content: [] }] }),
    status: 400,
    code: 'invalid_value',
    param: 'messages[0].content',
  },
  {
    name: 'an unknown content part',
    body: hello({ messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: {} }] }] }),
    status: 400,
    code: 'invalid_value',
    param: 'messages[0].content[0].type',
  },
  {
    name: 'an image in a system message',
    body: hello({ messages: [{ role: 'system', content: [{ type: 'image_url', image_url: { url: dataUrl(png) } }] }] }),
    status: 400,
    code: 'invalid_value',
    param: 'messages[0].content[0].type',
  },
  {
    name: 'a text part without text',
    body: hello({ messages: [{ role: 'user', content: [{ type: 'text' }] }] }),
    status: 400,
    code: 'missing_required_parameter',
    param: 'messages[0].content[0].text',
  },
  {
    name: 'an image part without a url',
    body: hello({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: {} }] }] }),
    status: 400,
    code: 'missing_required_parameter',
    param: URL0,
  },
  {
    name: 'an unknown image detail',
    body: withImage(dataUrl(png), 'ultra'),
    status: 400,
    code: 'invalid_value',
    param: 'messages[0].content[0].image_url.detail',
  },
  {
    name: 'an unknown field in a message',
    body: hello({ messages: [{ role: 'user', content: 'Hi', tool_calls: [] }] }),
    status: 400,
    code: 'unknown_parameter',
    param: 'messages[0].tool_calls',
  },
  {
    name: 'an unsupported top-level field',
    body: hello({ functions: [] }),
    status: 400,
    code: 'unknown_parameter',
    param: 'functions',
    message: "Unrecognized request argument supplied: 'functions'.",
  },
  {
    name: 'an unknown model',
    body: hello({ model: 'gpt-4o' }),
    status: 404,
    code: 'model_not_found',
    param: 'model',
    message: "The model 'gpt-4o' does not exist. This server serves 'kelix-tiny'.",
  },
  {
    name: 'negative max_tokens',
    body: hello({ max_tokens: -1 }),
    status: 400,
    code: 'invalid_value',
    param: 'max_tokens',
    message: "Invalid 'max_tokens': expected a value >= 1, but got -1 instead.",
  },
  {
    name: 'fractional max_completion_tokens',
    body: hello({ max_completion_tokens: 2.5 }),
    status: 400,
    code: 'invalid_type',
    param: 'max_completion_tokens',
  },
  {
    name: 'temperature above 2',
    body: hello({ temperature: 2.5 }),
    status: 400,
    code: 'invalid_value',
    param: 'temperature',
    message: "Invalid 'temperature': expected a value <= 2, but got 2.5 instead.",
  },
  {
    name: 'temperature as a string',
    body: hello({ temperature: '0.5' }),
    status: 400,
    code: 'invalid_type',
    param: 'temperature',
    message: "Invalid type for 'temperature': expected a number, but got a string instead.",
  },
  { name: 'top_p of 0', body: hello({ top_p: 0 }), status: 400, code: 'invalid_value', param: 'top_p' },
  { name: 'n of 0', body: hello({ n: 0 }), status: 400, code: 'invalid_value', param: 'n' },
  {
    name: 'n over the server limit',
    body: hello({ n: 17 }),
    status: 400,
    code: 'invalid_value',
    param: 'n',
    message: "Invalid 'n': expected a value <= 16 on this server, but got 17 instead.",
  },
  {
    name: 'five stop strings',
    body: hello({ stop: ['a', 'b', 'c', 'd', 'e'] }),
    status: 400,
    code: 'invalid_value',
    param: 'stop',
    message: "Invalid 'stop': expected an array with at most 4 items, but got 5.",
  },
  {
    name: 'a logit_bias key that is not a token id',
    body: hello({ logit_bias: { hello: 1 } }),
    status: 400,
    code: 'invalid_value',
    param: 'logit_bias',
  },
  {
    name: 'a logit_bias value out of range',
    body: hello({ logit_bias: { 12: 101 } }),
    status: 400,
    code: 'invalid_value',
    param: 'logit_bias[12]',
  },
  {
    name: 'top_logprobs without logprobs',
    body: hello({ top_logprobs: 2 }),
    status: 400,
    code: 'invalid_value',
    param: 'top_logprobs',
    message: "Invalid 'top_logprobs': only allowed when 'logprobs' is true.",
  },
  {
    name: 'top_logprobs over 20',
    body: hello({ logprobs: true, top_logprobs: 21 }),
    status: 400,
    code: 'invalid_value',
    param: 'top_logprobs',
  },
  {
    name: 'stream_options without stream',
    body: hello({ stream_options: { include_usage: true } }),
    status: 400,
    code: 'invalid_value',
    param: 'stream_options',
  },
  {
    name: 'an unknown response format',
    body: hello({ response_format: { type: 'yaml' } }),
    status: 400,
    code: 'invalid_value',
    param: 'response_format.type',
  },
  {
    name: 'a JSON schema format without its schema object',
    body: hello({ response_format: { type: 'json_schema' } }),
    status: 400,
    code: 'missing_required_parameter',
    param: 'response_format.json_schema',
  },
  { name: 'an empty tools list', body: hello({ tools: [] }), status: 400, code: 'invalid_value', param: 'tools' },
  {
    name: 'a data URL that is not base64',
    body: withImage('data:image/png,rawbytes'),
    status: 400,
    code: 'invalid_image',
    param: URL0,
    message: `The data URL at '${URL0}' is not base64-encoded: expected data:image/png;base64,<data>.`,
  },
  {
    name: 'a data URL with broken base64',
    body: withImage('data:image/png;base64,iVBOR#w0KGgo='),
    status: 400,
    code: 'invalid_image',
    param: URL0,
    message: `The data URL at '${URL0}' is not valid base64.`,
  },
  {
    name: 'a data URL that is not an image type',
    body: withImage(dataUrl(png, 'application/pdf')),
    status: 400,
    code: 'invalid_image',
    param: URL0,
    message: `Unsupported media type 'application/pdf' in the data URL at '${URL0}': expected image/png, image/jpeg, image/webp or image/gif.`,
  },
  {
    name: 'bytes that are not an image',
    body: withImage(dataUrl(Buffer.from('hello world'))),
    status: 400,
    code: 'invalid_image',
    param: URL0,
    message: `The image at '${URL0}' is not PNG, JPEG, WEBP or GIF (its bytes start 68 65 6c 6c 6f 20 77 6f).`,
  },
  {
    name: 'more images than the limit',
    body: hello({
      messages: [
        { role: 'user', content: [1, 2, 3].map(() => ({ type: 'image_url', image_url: { url: dataUrl(png) } })) },
      ],
    }),
    status: 400,
    code: 'too_many_images',
    param: 'messages',
    message: 'The request has 3 images; this server accepts at most 2 per request.',
  },
  {
    name: 'an image over the byte limit',
    body: withImage(dataUrl(new Uint8Array(70_000))),
    status: 400,
    code: 'image_too_large',
    param: URL0,
    message: `The image at '${URL0}' has 70000 bytes; the limit is 65536.`,
  },
  {
    name: 'a body over the size limit',
    body: hello({ user: 'x'.repeat(300_000) }),
    status: 413,
    code: 'request_too_large',
    param: null,
    message: 'The request body is larger than this server accepts.',
  },
  {
    name: 'a content type that is neither JSON nor multipart',
    init: { method: 'POST', headers: { 'content-type': 'text/plain', authorization: `Bearer ${KEY}` }, body: 'Hello' },
    status: 415,
    code: 'unsupported_media_type',
    param: null,
  },
  {
    name: 'no API key',
    init: { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(hello()) },
    status: 401,
    code: 'invalid_api_key',
    param: null,
    message:
      "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
  },
  {
    name: 'a wrong API key',
    init: {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer sk-wrong' },
      body: JSON.stringify(hello()),
    },
    status: 401,
    code: 'invalid_api_key',
    param: null,
    message: 'Incorrect API key provided.',
  },
  {
    name: 'a remote URL off the allow-list',
    body: withImage('https://evil.example.com/cat.png'),
    status: 400,
    code: 'invalid_image_url',
    param: URL0,
    message: `Could not fetch the image at '${URL0}': the host 'evil.example.com' is not on this server's allow-list`,
  },
  {
    name: 'an allow-listed remote URL that resolves to 127.0.0.1',
    body: withImage('https://127.0.0.1/cat.png'),
    status: 400,
    code: 'invalid_image_url',
    param: URL0,
    message: `Could not fetch the image at '${URL0}': '127.0.0.1' resolves to 127.0.0.1, a loopback address; images are only fetched from public addresses`,
  },
  {
    name: 'an allow-listed name for the loopback interface',
    body: withImage('https://localhost/cat.png'),
    status: 400,
    code: 'invalid_image_url',
    param: URL0,
    message: /'localhost' resolves to (127\.0\.0\.1|::1), a loopback address/,
  },
  {
    name: 'an http image URL',
    body: withImage('http://images.example.com/cat.png'),
    status: 400,
    code: 'invalid_image_url',
    param: URL0,
    message: `Unsupported URL scheme 'http:' at '${URL0}': expected a data: URL, attachment://<field> or an https URL.`,
  },
  {
    name: 'an attachment:// URL in a JSON request',
    body: withImage('attachment://photo'),
    status: 400,
    code: 'invalid_value',
    param: URL0,
  },
  {
    name: 'a multipart request without the request field',
    init: { method: 'POST', headers: { authorization: `Bearer ${KEY}` }, body: multipart({ photo: png }) },
    status: 400,
    code: 'missing_required_parameter',
    param: 'request',
    message: "Missing required multipart field 'request' holding the JSON body.",
  },
  {
    name: 'a multipart request with a dangling attachment://',
    init: {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}` },
      body: multipart({ request: JSON.stringify(withImage('attachment://missing')), photo: png }),
    },
    status: 400,
    code: 'invalid_value',
    param: URL0,
    message: `'${URL0}' refers to attachment://missing, but there is no file part named 'missing' (file parts: 'photo').`,
  },
  {
    name: 'a multipart request field that is not JSON',
    init: { method: 'POST', headers: { authorization: `Bearer ${KEY}` }, body: multipart({ request: '{nope' }) },
    status: 400,
    code: 'invalid_request_error',
    param: 'request',
  },
  {
    name: 'a multipart request whose JSON fails the schema',
    init: {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}` },
      body: multipart({ request: JSON.stringify(hello({ temperature: 9 })) }),
    },
    status: 400,
    code: 'invalid_value',
    param: 'temperature',
  },
]

t.test('every bad request gets its exact status, type, code and param, and the server stays healthy', async (t) => {
  t.ok(CASES.length >= 30)
  const engine = new ScriptedEngineClient()
  const { base, post } = await serve(t, engine, {
    config: {
      apiKeys: [KEY],
      maxBodyBytes: 256 * 1024,
      maxImagesPerRequest: 2,
      maxImageBytes: 65_536,
      remoteImages: true,
      remoteImageHosts: ['images.example.com', 'localhost', '127.0.0.1'],
    },
  })
  const auth = { authorization: `Bearer ${KEY}` }
  for (const c of CASES) {
    const res = c.init === undefined ? await post(c.body, auth) : await fetch(`${base}/v1/chat/completions`, c.init)
    const body = (await res.json()) as { error: { message: string; type: string; param: string | null; code: string } }
    t.equal(res.status, c.status, `${c.name}: status`)
    t.same(
      { ...body.error, message: undefined },
      {
        message: undefined,
        type: c.type ?? (c.status === 401 || c.status < 500 ? 'invalid_request_error' : 'server_error'),
        code: c.code,
        param: c.param,
      },
      `${c.name}: type, code, param`,
    )
    if (typeof c.message === 'string') t.equal(body.error.message, c.message, `${c.name}: message`)
    else if (c.message !== undefined) t.match(body.error.message, c.message, `${c.name}: message`)
    t.same(Object.keys(body), ['error'], `${c.name}: nothing but the error`)
  }
  const ready = await fetch(`${base}/health/ready`)
  t.equal(ready.status, 200)
  const ok = await post(hello(), auth)
  t.equal(ok.status, 200, 'a good request still succeeds')
  t.equal(engine.calls.length, 1, 'only the good request was submitted')
  t.equal(engine.openTickets, 0, 'every queue place taken before a refusal was given back')
})

t.test('remote image URLs are refused with a hint when the server does not enable them', async (t) => {
  const { post } = await serve(t, new ScriptedEngineClient())
  const res = await post(withImage('https://images.example.com/cat.png'))
  t.equal(res.status, 400)
  t.same(await res.json(), {
    error: {
      message: `Remote image URLs are not enabled on this server ('${URL0}'); send the image as a data: URL or as a multipart file part.`,
      type: 'invalid_request_error',
      param: URL0,
      code: 'invalid_image_url',
    },
  })
})

t.test('the SDK sees 404 model_not_found and 400 errors with their param', async (t) => {
  const { openai } = await serve(t, new ScriptedEngineClient())
  const notFound = await openai.chat.completions
    .create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Hi' }] })
    .catch((err: unknown) => err)
  t.type(notFound, OpenAI.NotFoundError)
  t.match(notFound, { status: 404, code: 'model_not_found', param: 'model', type: 'invalid_request_error' })
  const bad = await openai.chat.completions
    .create({ model: MODEL, messages: [{ role: 'user', content: 'Hi' }], temperature: 5 })
    .catch((err: unknown) => err)
  t.type(bad, OpenAI.BadRequestError)
  t.match(bad, {
    status: 400,
    code: 'invalid_value',
    param: 'temperature',
    message: "400 Invalid 'temperature': expected a value <= 2, but got 5 instead.",
  })
})
