/** The pure pieces: request → GenerateRequest, data URLs, and the completion and chunk objects. */
import t from 'tap'
import type { Attachment } from '../../src/http/multipart.js'
import { decodeDataUrl, type ImageSources } from '../../src/routes/chat/images.js'
import type { GenerationDefaults } from '../../src/batching/client-types.js'
import {
  checkRequest,
  OPENAI_SAMPLING_DEFAULTS,
  resolveMessages,
  toGenerateRequest,
  toSamplingParams,
  type RequestLimits,
} from '../../src/routes/chat/request.js'
import { ChunkFactory, chatCompletion, toOpenAiLogprob } from '../../src/routes/chat/response.js'
import type { ChatRequestBody } from '../../src/routes/chat/schema.js'

const LIMITS: RequestLimits = {
  maxChoices: 16,
  maxImagesPerRequest: 4,
  maxImageBytes: 1000,
  maxTokensLimit: undefined,
  maxPromptTokens: undefined,
  requestTimeoutMs: undefined,
}
/** The model's generation defaults (config.json `generation`), as the engine client reports them. */
const DEFAULTS: GenerationDefaults = { maxNewTokens: 256, temperature: 0.7, topP: 0.9, topK: 0 }
const PNG = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3])
const body = (extra: Partial<ChatRequestBody> = {}): ChatRequestBody => ({
  model: 'm',
  messages: [{ role: 'user', content: 'Hi' }],
  ...extra,
})
const sources = (attachments?: Map<string, Attachment>): ImageSources => ({
  attachments,
  remote: undefined,
  maxImageBytes: 1000,
  signal: new AbortController().signal,
})

t.test("omitted sampling fields take the model's generation defaults, the rest OpenAI's", async (t) => {
  t.same(toSamplingParams(body(), DEFAULTS), {
    temperature: 0.7,
    topP: 0.9,
    topK: 0,
    minP: 0,
    presencePenalty: 0,
    frequencyPenalty: 0,
    repetitionPenalty: 1,
    logitBias: new Map(),
    seed: undefined,
    topLogprobs: undefined,
  })
  t.match(toSamplingParams(body(), { temperature: 0.6, topP: 0.95, topK: 20 }), {
    temperature: 0.6,
    topP: 0.95,
    topK: 20,
  })
  t.match(
    toSamplingParams(body(), OPENAI_SAMPLING_DEFAULTS),
    { temperature: 1, topP: 1, topK: 0 },
    "the image token phase keeps OpenAI's",
  )
})

t.test('every sampling field maps to its engine control', async (t) => {
  const p = toSamplingParams(
    body({
      temperature: 0.5,
      top_p: 0.9,
      top_k: 40,
      min_p: 0.05,
      presence_penalty: 0.5,
      frequency_penalty: -0.5,
      repetition_penalty: 1.1,
      logit_bias: { '7': -100, '42': 3 },
      seed: 9,
      logprobs: true,
      top_logprobs: 3,
    }),
    { temperature: 0.1, topP: 0.2, topK: 3 },
  )
  t.same(p, {
    temperature: 0.5,
    topP: 0.9,
    topK: 40,
    minP: 0.05,
    presencePenalty: 0.5,
    frequencyPenalty: -0.5,
    repetitionPenalty: 1.1,
    logitBias: new Map([
      [7, -100],
      [42, 3],
    ]),
    seed: 9,
    topLogprobs: 3,
  })
  t.equal(
    toSamplingParams(body({ top_k: -1 }), { ...DEFAULTS, topK: 20 }).topK,
    0,
    'top_k -1 (the vLLM spelling of "off") disables it',
  )
  t.equal(
    toSamplingParams(body({ logprobs: true }), DEFAULTS).topLogprobs,
    0,
    'logprobs without top_logprobs: the chosen token only',
  )
})

t.test('max_completion_tokens wins over max_tokens; stop becomes a list; the timeout passes through', async (t) => {
  const r = toGenerateRequest(
    body({ max_tokens: 10, max_completion_tokens: 20, stop: 'END', n: 3 }),
    [],
    { ...LIMITS, requestTimeoutMs: 5000 },
    DEFAULTS,
  )
  t.match(r, { n: 3, maxNewTokens: 20, stop: ['END'], timeoutMs: 5000 })
  t.same(toGenerateRequest(body({ stop: null }), [], LIMITS, DEFAULTS).stop, [])
  t.notOk('timeoutMs' in toGenerateRequest(body(), [], LIMITS, DEFAULTS))
})

t.test(
  "without max tokens the engine gives the rest of the context, capped by the model's default and the server limit",
  async (t) => {
    t.equal(
      toGenerateRequest(body(), [], LIMITS, DEFAULTS).maxNewTokens,
      undefined,
      'the engine gives the rest of the context',
    )
    t.equal(toGenerateRequest(body(), [], LIMITS, DEFAULTS).maxNewTokensLimit, 256, "the model's max_new_tokens")
    t.equal(
      toGenerateRequest(body(), [], { ...LIMITS, maxTokensLimit: 100 }, DEFAULTS).maxNewTokensLimit,
      100,
      'the server limit, when lower',
    )
    t.equal(toGenerateRequest(body(), [], { ...LIMITS, maxTokensLimit: 300 }, DEFAULTS).maxNewTokensLimit, 256)
  },
)

t.test('checks across fields and against limits name the param', async (t) => {
  t.throws(() => checkRequest(body({ max_tokens: 500 }), { ...LIMITS, maxTokensLimit: 100 }), {
    code: 'invalid_value',
    fields: { param: 'max_tokens' },
    message: "Invalid 'max_tokens': expected a value <= 100 on this server, but got 500 instead.",
  })
  // The context is the engine's to check (it alone knows the prompt's length): chat-errors.test.ts sends one over it.
  t.doesNotThrow(() => checkRequest(body({ max_completion_tokens: 4096 }), LIMITS))
  t.doesNotThrow(() =>
    checkRequest(
      body({
        max_tokens: 4095,
        stream: true,
        stream_options: { include_usage: true },
        logprobs: true,
        top_logprobs: 1,
      }),
      LIMITS,
    ),
  )
})

t.test('messages keep their order; developer becomes system; images become bytes', async (t) => {
  const url = `data:image/png;base64,${Buffer.from(PNG).toString('base64')}`
  const messages = await resolveMessages(
    [
      { role: 'developer', content: 'Rules' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'Look' },
          { type: 'image_url', image_url: { url, detail: 'high' } },
        ],
      },
    ],
    sources(),
    4,
  )
  t.same(messages, [
    { role: 'system', content: 'Rules' },
    {
      role: 'user',
      content: [
        { type: 'text', text: 'Look' },
        { type: 'image', image: { bytes: PNG, detail: 'high' } },
      ],
    },
  ])
})

t.test('unreferenced attachments join the last user message; referenced ones stay where they are named', async (t) => {
  const file = (bytes: Uint8Array): Attachment => ({ bytes, filename: undefined, mimetype: 'image/png' })
  const other = new Uint8Array([...PNG, 9])
  const attachments = new Map([
    ['a', file(PNG)],
    ['b', file(other)],
  ])
  const messages = await resolveMessages(
    [
      { role: 'user', content: [{ type: 'image_url', image_url: { url: 'attachment://b' } }] },
      { role: 'assistant', content: 'Ok' },
      { role: 'user', content: 'And this?' },
    ],
    sources(attachments),
    4,
  )
  t.same(messages[0], { role: 'user', content: [{ type: 'image', image: { bytes: other, detail: 'auto' } }] })
  t.same(messages[2], {
    role: 'user',
    content: [
      { type: 'text', text: 'And this?' },
      { type: 'image', image: { bytes: PNG, detail: 'auto' } },
    ],
  })
})

t.test('data URLs: whitespace and missing padding are tolerated, everything else is refused by name', async (t) => {
  t.same(
    decodeDataUrl('data:image/png;base64,iVBO Rw0K\nGgo', 'p'),
    new Uint8Array(Buffer.from('iVBORw0KGgo=', 'base64')),
  )
  t.same(decodeDataUrl('data:IMAGE/JPEG;charset=x;base64,/9j/', 'p'), new Uint8Array([0xff, 0xd8, 0xff]))
  t.throws(() => decodeDataUrl('data:image/png;base64', 'p'), {
    code: 'invalid_image',
    fields: { param: 'p' },
    message: "Invalid data URL at 'p': expected data:<media type>;base64,<data>.",
  })
  t.throws(() => decodeDataUrl('data:;base64,AAAA', 'p'), {
    message:
      "Unsupported media type none in the data URL at 'p': expected image/png, image/jpeg, image/webp or image/gif.",
  })
  t.throws(() => decodeDataUrl('data:image/svg+xml;base64,AAAA', 'p'), { code: 'invalid_image' })
  t.throws(() => decodeDataUrl('data:image/png;base64,AAAAA', 'p'), {
    message: "The data URL at 'p' is not valid base64.",
  })
})

t.test('a completion carries every choice, its logprobs and the usage', async (t) => {
  const meta = { id: 'chatcmpl-1', created: 1, model: 'm', systemFingerprint: 'fp' }
  // A token that ends inside a character: its text shows U+FFFD, its bytes are the token's own.
  const lp = toOpenAiLogprob({
    id: 5,
    text: '\ufffd',
    bytes: [0xc3],
    logprob: -0.5,
    top: [{ id: 5, text: '\ufffd', bytes: [0xc3], logprob: -0.5 }],
  })
  t.same(lp, {
    token: '\ufffd',
    logprob: -0.5,
    bytes: [0xc3],
    top_logprobs: [{ token: '\ufffd', logprob: -0.5, bytes: [0xc3] }],
  })
  const c = chatCompletion(
    meta,
    [
      { text: 'a', logprobs: [lp], finishReason: 'stop' },
      { text: 'b', logprobs: undefined, finishReason: undefined },
    ],
    { promptTokens: 3, cachedPromptTokens: 0, completionTokens: 2, totalTokens: 5 },
  )
  t.same(c, {
    id: 'chatcmpl-1',
    object: 'chat.completion',
    created: 1,
    model: 'm',
    system_fingerprint: 'fp',
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: 'a', refusal: null },
        logprobs: { content: [lp], refusal: null },
        finish_reason: 'stop',
      },
      {
        index: 1,
        message: { role: 'assistant', content: 'b', refusal: null },
        logprobs: null,
        finish_reason: 'length',
      },
    ],
    usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5, prompt_tokens_details: { cached_tokens: 0 } },
  })
})

t.test('chunks carry usage: null only with include_usage, and the usage chunk has no choices', async (t) => {
  const meta = { id: 'chatcmpl-2', created: 2, model: 'm', systemFingerprint: 'fp' }
  const head = { id: 'chatcmpl-2', object: 'chat.completion.chunk', created: 2, model: 'm', system_fingerprint: 'fp' }
  const plain = new ChunkFactory(meta, false)
  t.same(plain.role(1), {
    ...head,
    choices: [{ index: 1, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }],
  })
  t.same(plain.content(0, 'hi', undefined), {
    ...head,
    choices: [{ index: 0, delta: { content: 'hi' }, logprobs: null, finish_reason: null }],
  })
  t.same(plain.finish(0, 'length'), {
    ...head,
    choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'length' }],
  })
  const counted = new ChunkFactory(meta, true)
  t.same(counted.finish(0, 'stop'), {
    ...head,
    choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }],
    usage: null,
  })
  t.same(counted.usage({ promptTokens: 17, cachedPromptTokens: 16, completionTokens: 2, totalTokens: 19 }), {
    ...head,
    choices: [],
    usage: { prompt_tokens: 17, completion_tokens: 2, total_tokens: 19, prompt_tokens_details: { cached_tokens: 16 } },
  })
})
