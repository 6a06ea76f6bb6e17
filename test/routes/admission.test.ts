/** Admission comes before any slow work: a refused request never has its images downloaded. */
import t from 'tap'
import { KelixError } from '../../src/errors/kelix-error.js'
import { FAKE_PNG, ScriptedEngineClient } from '../helpers/scripted-engine-client.js'
import { MODEL, serve } from './serve.js'

t.test('a request the engine refuses is answered before its remote image is fetched', async (t) => {
  const fetched: string[] = []
  const remoteImages = {
    async fetchImage(url: URL) {
      fetched.push(url.href)
      return FAKE_PNG
    },
  }
  const engine = new ScriptedEngineClient()
  const { post } = await serve(t, engine, {
    remoteImages,
    config: { remoteImages: true, remoteImageHosts: ['images.example.com'] },
  })
  const withRemoteImage = (name: string) => ({
    model: MODEL,
    max_tokens: 2,
    messages: [
      {
        role: 'user',
        content: [
          { type: 'image_url', image_url: { url: `https://images.example.com/${name}.png` } },
          { type: 'text', text: 'What is this?' },
        ],
      },
    ],
  })

  const accepted = await post(withRemoteImage('first'))
  t.equal(accepted.status, 200, 'while admitting, the image is fetched and used')
  t.same(fetched, ['https://images.example.com/first.png'])
  t.same(
    engine.calls[0]?.request.messages[0]?.content,
    [
      { type: 'image', image: { bytes: FAKE_PNG, detail: 'auto' } },
      { type: 'text', text: 'What is this?' },
    ],
    'the fetched bytes went to the engine',
  )
  t.equal(engine.openTickets, 0, 'its place in the queue became the request')

  const refusals = [
    {
      error: new KelixError('queue_full', 'The server is overloaded (queue full); retry later.', {
        retryAfterSeconds: 1,
      }),
      status: 429,
      code: 'rate_limit_exceeded',
    },
    {
      error: new KelixError('draining', 'The server is shutting down; retry on another instance.', {
        retryAfterSeconds: 1,
      }),
      status: 503,
      code: 'server_shutting_down',
    },
  ]
  for (const { error, status, code } of refusals) {
    engine.refusal = error
    const refused = await post(withRemoteImage('second'))
    t.equal(refused.status, status, code)
    t.equal(refused.headers.get('retry-after'), '1')
    t.match(await refused.json(), { error: { code, message: error.message } })
  }
  t.same(fetched, ['https://images.example.com/first.png'], 'the refused requests fetched nothing')
  t.equal(engine.calls.length, 1, 'nor were they submitted')
})

t.test('a place taken before a failing image download is given back', async (t) => {
  const remoteImages = {
    async fetchImage(): Promise<Uint8Array> {
      throw new Error('the server answered 404')
    },
  }
  const engine = new ScriptedEngineClient()
  const { post } = await serve(t, engine, {
    remoteImages,
    config: { remoteImages: true, remoteImageHosts: ['images.example.com'] },
  })
  const res = await post({
    model: MODEL,
    messages: [
      { role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://images.example.com/gone.png' } }] },
    ],
  })
  t.equal(res.status, 400)
  t.match(await res.json(), { error: { code: 'invalid_image_url', param: 'messages[0].content[0].image_url.url' } })
  t.same(
    [engine.reservations.length, engine.openTickets, engine.calls.length],
    [1, 0, 0],
    'reserved, released, never submitted',
  )
})
