/**
 * The image flow alone (./src/batching/engine-thread/image-requests.ts), through
 * the loop over the fake engine and painter: token phase, then denoising
 * batched across images, then one PNG per image; a request that fails, in
 * whichever way, gets exactly one `imageFailed` and leaves nothing behind.
 */
import t from 'tap'
import type { ImageRequest } from '../../src/batching/client-types.js'
import type { WorkerToHost } from '../../src/batching/protocol.js'
import { GREEDY } from '../../src/engine/types.js'
import { FAKE_IMAGE_CONFIG, FakePainter } from './fixtures/fake-loop-engine.js'
import { loopHarness, type Harness } from './fixtures/loop-harness.js'
import { IDLE_STATS } from '../helpers/idle-stats.js'

const image = (extra: Partial<ImageRequest> = {}): ImageRequest => ({
  prompt: 'a red cube',
  n: 1,
  sampling: { ...GREEDY, temperature: 1, seed: 7 },
  ...extra,
})
/** Blocks the fake engine's token phase writes for the fake painter's grid. */
const TOKENS = FAKE_IMAGE_CONFIG.grid * FAKE_IMAGE_CONFIG.grid + 2

const of = <K extends WorkerToHost['type']>(h: Harness, reqId: string, type: K) =>
  h.about(reqId).filter((m): m is Extract<WorkerToHost, { type: K }> => m.type === type)
const done = (h: Harness, reqId: string, n: number) =>
  of(h, reqId, 'image').length === n || of(h, reqId, 'imageFailed').length > 0

t.test('two images: token progress, denoising batched, then each image once; nothing is left', async (t) => {
  const painter = new FakePainter()
  const h = loopHarness({ painter })
  t.teardown(() => h.stop())
  await h.loop.submitImage('img', image({ n: 2, partialImages: 1 }), Date.now())
  // "a red cube": 3 words and 2 more blocks, then <|vision_start|>.
  t.match(h.about('img')[0], { type: 'admitted', promptTokens: 6 })
  await h.until(() => done(h, 'img', 2))
  const progress = of(h, 'img', 'imageProgress')
  for (const index of [0, 1]) {
    const tokens = progress.filter((p) => p.index === index && p.phase === 'tokens')
    t.match(tokens.at(-1), { step: TOKENS, total: TOKENS }, `image ${index}'s token phase reported to its end`)
    t.same(
      progress.filter((p) => p.index === index && p.phase === 'denoise').map((p) => p.step),
      [1, 2, 3],
      `image ${index}'s denoise steps`,
    )
  }
  t.same(painter.batches, [2, 2, 2], 'both images in every denoise call')
  t.same(
    of(h, 'img', 'imagePartial').map((m) => [m.index, m.partialIndex]),
    [
      [0, 0],
      [1, 0],
    ],
    'one partial image each',
  )
  t.same(
    of(h, 'img', 'image').map((m) => [m.index, [...m.png]]),
    [
      [0, [7]],
      [1, [8]],
    ],
    'image i from seed + i',
  )
  t.same(of(h, 'img', 'imageFailed'), [])
  t.same(h.loop.stats(), IDLE_STATS)
})

t.test('a model without an image decoder refuses image requests at submit', async (t) => {
  const h = loopHarness()
  t.teardown(() => h.stop())
  await h.loop.submitImage('img', image(), Date.now())
  t.match(h.about('img'), [
    { type: 'rejected', error: { code: 'model_capability_missing', fields: { param: 'model' } } },
  ])
  t.same(h.loop.stats(), IDLE_STATS)
})

t.test('an image prompt whose token phase would pass the context is refused with the numbers', async (t) => {
  const h = loopHarness({ painter: new FakePainter() })
  t.teardown(() => h.stop())
  // 58 words: 60 prompt blocks, <|vision_start|>, then 6 blocks and <|vision_end|>'s pass: 68 > 64.
  await h.loop.submitImage('img', image({ prompt: Array.from({ length: 58 }, () => 'w').join(' ') }), Date.now())
  t.match(h.about('img'), [
    {
      type: 'rejected',
      error: {
        code: 'context_length_exceeded',
        message:
          /maximum context length is 64 tokens\. However, you requested 68 tokens \(61 in the messages, 7 in the completion\)/,
      },
    },
  ])
  t.same(h.loop.stats(), IDLE_STATS)
})

t.test('a denoise step that throws fails its request once, whatever its number of images', async (t) => {
  const painter = new FakePainter()
  painter.failDenoise = () => new Error('dit.onnx fell over')
  const h = loopHarness({ painter })
  t.teardown(() => h.stop())
  await h.loop.submitImage('img', image({ n: 2 }), Date.now())
  await h.until(() => done(h, 'img', 2))
  // Let the loop go idle: nothing more may come.
  await h.until((m) => m.at(-1)?.type === 'gauges')
  t.match(
    of(h, 'img', 'imageFailed'),
    [{ error: { code: 'engine_failed', message: 'denoising failed: dit.onnx fell over' } }],
    'one imageFailed',
  )
  t.same(of(h, 'img', 'image'), [])
  t.same(h.loop.stats(), IDLE_STATS)
})

t.test('an image request past its deadline fails once, all its images with it', async (t) => {
  const h = loopHarness({ painter: new FakePainter() })
  t.teardown(() => h.stop())
  await h.loop.submitImage('img', image({ n: 2, timeoutMs: 0 }), Date.now())
  await h.until(() => done(h, 'img', 2))
  await h.until((m) => m.at(-1)?.type === 'gauges')
  t.match(of(h, 'img', 'imageFailed'), [
    { error: { code: 'timeout', message: 'The request ran past its time limit.' } },
  ])
  t.same(h.loop.stats(), IDLE_STATS)
})

t.test('an abort in the denoise phase drops the request; another one finishes', async (t) => {
  const h = loopHarness({ painter: new FakePainter(40) })
  t.teardown(() => h.stop())
  await h.loop.submitImage('gone', image(), Date.now())
  await h.loop.submitImage('kept', image({ sampling: { ...GREEDY, temperature: 1, seed: 3 } }), Date.now())
  await h.until(() => of(h, 'gone', 'imageProgress').some((p) => p.phase === 'denoise'))
  h.loop.abort('gone')
  await h.until(() => done(h, 'kept', 1))
  t.same(of(h, 'gone', 'image'), [], 'no image for the aborted request')
  t.same(of(h, 'gone', 'imageFailed'), [], 'and no failure either: the client left')
  t.same([...(of(h, 'kept', 'image')[0]?.png ?? [])], [3])
  t.same(h.loop.stats(), IDLE_STATS)
})
