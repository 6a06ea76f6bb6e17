/** Admission comes before any slow work: a full queue refuses without downloading the request's images. */
import t from 'tap'
import { patternPng } from '../helpers/images.js'
import { MODEL, serve, tinyEngine } from './serve.js'

const engine = await tinyEngine(t, { maxWaiting: 1, limits: { maxNumSeqs: 1, maxBatchedTokens: 64 } })

t.test('with the waiting queue full, a request with a remote image is refused 429 before its image is fetched', async (t) => {
  const png = await patternPng(56, 56)
  const fetched: string[] = []
  const remoteImages = {
    async fetchImage(url: URL) {
      fetched.push(url.href)
      return png
    },
  }
  const { base, post } = await serve(t, engine, { remoteImages, config: { remoteImages: true, remoteImageHosts: ['images.example.com'] } })
  const long = { model: MODEL, messages: [{ role: 'user', content: 'Talk.' }], max_tokens: 3000, logit_bias: { 502: -100 }, stream: true }
  const running = new AbortController()
  const waiting = new AbortController()
  const first = await fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(long), signal: running.signal })
  t.equal(first.status, 200, 'the first request is admitted')
  // Waits for states, not for times: the machine may be busy. The first leaves the queue once it runs.
  const until = async (ready: (s: Awaited<ReturnType<typeof engine.engineStats>>) => boolean) => {
    for (let i = 0; i < 600 && !ready(await engine.engineStats()); i++) await new Promise((resolve) => setTimeout(resolve, 25))
  }
  await until((s) => s.running === 1)
  // The second holds the one waiting place (max_num_seqs is 1); its headers come once it is admitted.
  const second = fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(long), signal: waiting.signal })
  await until((s) => s.waiting === 1)
  t.equal((await engine.engineStats()).waiting, 1, 'one request waits')

  const refused = await post({
    model: MODEL,
    messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://images.example.com/cat.png' } }, { type: 'text', text: 'What is this?' }] }],
  })
  t.equal(refused.status, 429)
  t.equal(refused.headers.get('retry-after'), '1')
  t.match(await refused.json(), { error: { code: 'rate_limit_exceeded' } })
  t.same(fetched, [], 'the image was never downloaded')

  running.abort()
  waiting.abort()
  await second.catch(() => undefined)
})
