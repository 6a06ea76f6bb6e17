/**
 * multipart/form-data chat requests: the JSON in the field `request`, images
 * as file parts, referenced as attachment://<field> or appended to the last
 * user message. Each is checked against the same request sent as JSON with
 * data URLs: the engine (a scripted one, which records what it is given) gets
 * the same request, image bytes included.
 */
import t from 'tap'
import type { GenerateRequest } from '../../src/batching/client-types.js'
import { patternPng } from '../helpers/images.js'
import { ScriptedEngineClient } from '../helpers/scripted-engine-client.js'
import { MODEL, serve } from './serve.js'

const [red, blue] = await Promise.all([patternPng(32, 32, 1), patternPng(40, 24, 2)])
const dataUrl = (bytes: Uint8Array) => `data:image/png;base64,${Buffer.from(bytes).toString('base64')}`
const image = (url: string) => ({ type: 'image_url', image_url: { url } })
const text = (value: string) => ({ type: 'text', text: value })

function form(request: unknown, files: Record<string, Uint8Array>, jsonPart = false): FormData {
  const body = new FormData()
  const json = JSON.stringify(request)
  body.append('request', jsonPart ? new Blob([json], { type: 'application/json' }) : json)
  for (const [name, bytes] of Object.entries(files))
    body.append(name, new Blob([bytes], { type: 'image/png' }), `${name}.png`)
  return body
}

/** What the engine was asked for by the `index`-th request, once it was answered with 200. */
async function submitted(engine: ScriptedEngineClient, res: Response, index: number): Promise<GenerateRequest> {
  if (res.status !== 200) throw new Error(`status ${res.status}: ${await res.text()}`)
  await res.json()
  return (await engine.call(index)).request
}

const chat = (content: unknown[]) => ({
  model: MODEL,
  max_tokens: 6,
  temperature: 0,
  messages: [
    { role: 'system', content: 'Look.' },
    { role: 'user', content },
  ],
})

t.test('file parts referenced as attachment:// are the images they name', async (t) => {
  const engine = new ScriptedEngineClient()
  const { base, post } = await serve(t, engine)
  const viaJson = await submitted(
    engine,
    await post(chat([image(dataUrl(blue)), text('Compare'), image(dataUrl(red))])),
    0,
  )
  const viaForm = await submitted(
    engine,
    await fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      body: form(chat([image('attachment://b'), text('Compare'), image('attachment://a')]), { a: red, b: blue }),
    }),
    1,
  )
  t.same(viaForm, viaJson)
  t.same(viaForm.messages[1]?.content, [
    { type: 'image', image: { bytes: blue, detail: 'auto' } },
    { type: 'text', text: 'Compare' },
    { type: 'image', image: { bytes: red, detail: 'auto' } },
  ])
})

t.test('unreferenced file parts are appended in order to the last user message', async (t) => {
  const engine = new ScriptedEngineClient()
  const { base, post } = await serve(t, engine)
  const conversation = (last: unknown) => ({
    model: MODEL,
    max_tokens: 6,
    temperature: 0,
    messages: [
      { role: 'user', content: 'First' },
      { role: 'assistant', content: 'Ok' },
      { role: 'user', content: last },
    ],
  })
  const viaJson = await submitted(
    engine,
    await post(conversation([text('Describe'), image(dataUrl(red)), image(dataUrl(blue))])),
    0,
  )
  const viaForm = await submitted(
    engine,
    await fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      body: form(conversation('Describe'), { first: red, second: blue }),
    }),
    1,
  )
  t.same(viaForm, viaJson)
  t.same(
    viaForm.messages.map((m) => m.content),
    [
      'First',
      'Ok',
      [
        { type: 'text', text: 'Describe' },
        { type: 'image', image: { bytes: red, detail: 'auto' } },
        { type: 'image', image: { bytes: blue, detail: 'auto' } },
      ],
    ],
  )
})

t.test('the request field may be a JSON part, and a multipart request can stream', async (t) => {
  const engine = new ScriptedEngineClient()
  const { base } = await serve(t, engine)
  const request = { ...chat([text('Hi'), image('attachment://pic')]), stream: true }
  const res = await fetch(`${base}/v1/chat/completions`, { method: 'POST', body: form(request, { pic: red }, true) })
  t.equal(res.status, 200)
  t.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8')
  t.match(await res.text(), /"content":"Hello"[\s\S]*data: \[DONE\]\n\n$/)
  t.same((await engine.call(0)).request.messages[1]?.content, [
    { type: 'text', text: 'Hi' },
    { type: 'image', image: { bytes: red, detail: 'auto' } },
  ])
})

t.test('a file over the image byte limit, and more files than the image limit, are 413', async (t) => {
  const engine = new ScriptedEngineClient()
  const { base } = await serve(t, engine, { config: { maxImageBytes: 2000, maxImagesPerRequest: 2 } })
  const big = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST',
    body: form(chat([text('Hi')]), { big: new Uint8Array(5000) }),
  })
  t.equal(big.status, 413)
  t.same(await big.json(), {
    error: {
      message: "The file part 'big' has more than 2000 bytes; this server accepts at most 2000 per image.",
      type: 'invalid_request_error',
      param: 'big',
      code: 'request_too_large',
    },
  })
  const tiny = red.length <= 2000 ? red : red.subarray(0, 1000)
  const many = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST',
    body: form(chat([text('Hi')]), { a: tiny, b: tiny, c: tiny }),
  })
  t.equal(many.status, 413)
  t.same(await many.json(), {
    error: {
      message: 'The request has more than 2 file parts; this server accepts at most 2 images per request.',
      type: 'invalid_request_error',
      param: null,
      code: 'request_too_large',
    },
  })
  t.same(engine.reservations, [], 'refused before the engine was asked')
})

t.test('two file parts with one name and extra form fields are refused by name', async (t) => {
  const { base } = await serve(t, new ScriptedEngineClient())
  const dup = form(chat([text('Hi')]), { a: red })
  dup.append('a', new Blob([blue]), 'again.png')
  const res = await fetch(`${base}/v1/chat/completions`, { method: 'POST', body: dup })
  t.equal(res.status, 400)
  t.same(await res.json(), {
    error: {
      message: "Two file parts are named 'a'; file part names must be unique.",
      type: 'invalid_request_error',
      param: 'a',
      code: 'invalid_request_error',
    },
  })
  const extra = form(chat([text('Hi')]), {})
  extra.append('model', MODEL)
  const res2 = await fetch(`${base}/v1/chat/completions`, { method: 'POST', body: extra })
  t.equal(res2.status, 400)
  t.same(await res2.json(), {
    error: {
      message: "Unknown multipart field 'model': the JSON body goes in a field named 'request', images in file parts.",
      type: 'invalid_request_error',
      param: 'model',
      code: 'unknown_parameter',
    },
  })
})

t.test('files with no user message to attach to are refused', async (t) => {
  const { base } = await serve(t, new ScriptedEngineClient())
  const request = { model: MODEL, max_tokens: 2, messages: [{ role: 'system', content: 'Only a system message' }] }
  const res = await fetch(`${base}/v1/chat/completions`, { method: 'POST', body: form(request, { a: red }) })
  t.equal(res.status, 400)
  t.same(await res.json(), {
    error: {
      message: 'The request has file parts but no user message to attach them to.',
      type: 'invalid_request_error',
      param: 'messages',
      code: 'invalid_request_error',
    },
  })
})
