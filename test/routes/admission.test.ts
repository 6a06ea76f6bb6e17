/** Admission comes before any slow work: a refused request never has its images downloaded. */
import t from 'tap'
import { patternPng } from '../helpers/images.js'
import { MODEL, serve, tinyEngine } from './serve.js'

const engine = await tinyEngine(t)

t.test('a request the engine refuses is answered before its remote image is fetched', async (t) => {
  const png = await patternPng(56, 56)
  const fetched: string[] = []
  const remoteImages = {
    async fetchImage(url: URL) {
      fetched.push(url.href)
      return png
    },
  }
  const { post } = await serve(t, engine, { remoteImages, config: { remoteImages: true, remoteImageHosts: ['images.example.com'] } })
  const withRemoteImage = (name: string) => ({
    model: MODEL,
    max_tokens: 2,
    messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `https://images.example.com/${name}.png` } }, { type: 'text', text: 'What is this?' }] }],
  })

  const accepted = await post(withRemoteImage('first'))
  t.equal(accepted.status, 200, 'while admitting, the image is fetched and used')
  t.same(fetched, ['https://images.example.com/first.png'])

  // Draining makes every reservation fail, deterministically, like a full queue does.
  await engine.drain(5_000)
  const refused = await post(withRemoteImage('second'))
  t.equal(refused.status, 503)
  t.equal(refused.headers.get('retry-after'), '1')
  t.match(await refused.json(), { error: { code: 'server_shutting_down' } })
  t.same(fetched, ['https://images.example.com/first.png'], 'the refused request fetched nothing')
})
