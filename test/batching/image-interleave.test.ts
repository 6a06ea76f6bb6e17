/**
 * The engine loop interleaves image denoising with chat decoding: while a chat
 * stream runs, every denoise step is followed by a decode step, so a chat
 * token never waits for more than one denoise step (plus its own step).
 */
import t from 'tap'
import { EngineLoop } from '../../src/batching/engine-thread/engine-loop.js'
import { decoderPainter } from '../../src/batching/engine-thread/image-jobs.js'
import type { WorkerToHost } from '../../src/batching/protocol.js'
import { Scheduler } from '../../src/batching/engine-thread/scheduler/index.js'
import { GREEDY } from '../../src/engine/types.js'
import { tinyEngine } from '../helpers/engine.js'
import { IDLE_STATS } from '../helpers/idle-stats.js'

t.test('between two denoise steps there is a decode step carrying a token of the running chat', async (t) => {
  const { engine, dispose } = await tinyEngine()
  t.teardown(dispose)
  const scheduler = new Scheduler({
    maxNumSeqs: 8,
    maxBatchedTokens: 256,
    kvCapacity: 16_384,
    pageSize: 16,
    maxModelLength: 4096,
  })
  const log: WorkerToHost[] = []
  let finished = 0
  const loop = new EngineLoop(
    engine,
    scheduler,
    (message) => {
      log.push(message)
      if (message.type === 'image') finished++
      if (message.type === 'step' && message.updates.some((u) => u.reqId === 'chat' && u.finishReason !== undefined))
        finished++
      if (finished === 2) loop.stop()
    },
    () => undefined,
    decoderPainter(engine.model.imageDecoder!),
  )
  const running = loop.run()
  await loop.submitImage(
    'img',
    { prompt: 'A lighthouse', n: 1, sampling: { ...GREEDY, temperature: 1, seed: 5 } },
    Date.now(),
  )
  // The chat starts while the image is still in its token phase and outlasts its denoising.
  const imBan = new Map([[engine.model.config.special_tokens.im_end, -100]])
  await loop.submit(
    'chat',
    {
      messages: [{ role: 'user', content: 'Talk for a while.' }],
      n: 1,
      sampling: { ...GREEDY, logitBias: imBan },
      maxNewTokens: 120,
      stop: [],
    },
    Date.now(),
  )
  await running

  const denoise = log.flatMap((m, i) => (m.type === 'imageProgress' && m.phase === 'denoise' ? [i] : []))
  t.equal(denoise.length, engine.model.config.image_generation?.steps, 'every denoise step reported')
  const chatToken = (m: WorkerToHost | undefined) =>
    m?.type === 'step' && m.updates.some((u) => u.reqId === 'chat' && u.tokenIds.length > 0)
  for (let k = 1; k < denoise.length; k++) {
    const between = log.slice(denoise[k - 1], denoise[k])
    t.ok(between.some(chatToken), `a chat token between denoise steps ${k} and ${k + 1}`)
  }
  t.ok(
    log.some((m) => m.type === 'image'),
    'the image was delivered',
  )
  t.same(loop.stats(), IDLE_STATS)
})
