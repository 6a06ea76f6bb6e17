/**
 * An engine step that throws (issue 15's failure path): every request in
 * flight, chat or image, in whichever phase, ends with exactly one terminal
 * error; the cause goes to the host's logger (a 'log' message: the worker has
 * no logger of its own); nothing is left, and the loop serves the next request.
 */
import t from 'tap'
import type { GenerateRequest, ImageRequest } from '../../src/batching/client-types.js'
import type { WorkerToHost } from '../../src/batching/protocol.js'
import { GREEDY } from '../../src/engine/types.js'
import { FakeLoopEngine, FakePainter } from './fixtures/fake-loop-engine.js'
import { ended, endings, loopHarness, type Harness } from './fixtures/loop-harness.js'
import { IDLE_STATS } from '../helpers/idle-stats.js'

const chat = (extra: Partial<GenerateRequest> = {}): GenerateRequest => ({
  messages: [{ role: 'user', content: 'one two three' }],
  n: 1,
  sampling: GREEDY,
  stop: [],
  ...extra,
})
const image = (extra: Partial<ImageRequest> = {}): ImageRequest => ({
  prompt: 'a red cube',
  n: 1,
  sampling: { ...GREEDY, temperature: 1, seed: 7 },
  ...extra,
})

const failed = (h: Harness, reqId: string) => h.about(reqId).filter((m) => m.type === 'imageFailed')
const logs = (h: Harness) => h.messages.filter((m): m is Extract<WorkerToHost, { type: 'log' }> => m.type === 'log')

/** The engine throws on the first step that plans one of `ids` (and `when` holds). */
function failingOn(engine: FakeLoopEngine, ids: string[], when: () => boolean = () => true): void {
  let thrown = false
  engine.failStep = (plan) => {
    if (thrown || !plan.some((row) => ids.includes(row.id)) || !when()) return undefined
    thrown = true
    return new Error('decoder.onnx: out of device memory')
  }
}

t.test(
  'a step that throws while an image is in its token phase: one imageFailed, one error per chat choice, the cause logged',
  async (t) => {
    const engine = new FakeLoopEngine()
    const h = loopHarness({ engine, painter: new FakePainter() })
    t.teardown(() => h.stop())
    // The image's prompt is computed and its token phase under way (2 of its 6 blocks written) when the step throws.
    failingOn(engine, ['img#0'], () => (engine.get('img#0')?.generatedIds.length ?? 0) >= 2)
    await h.loop.submit('chat', chat({ n: 2, maxNewTokens: 30 }), Date.now())
    await h.loop.submitImage('img', image(), Date.now())
    await h.until(() => ended(h, 'chat', 2) && failed(h, 'img').length > 0)
    await h.until((m) => m.at(-1)?.type === 'gauges')

    t.match(
      failed(h, 'img'),
      [{ type: 'imageFailed', error: { code: 'engine_failed', message: /decoder\.onnx: out of device memory/ } }],
      'exactly one imageFailed',
    )
    t.same(endings(h.updates('chat'), 2), [['error'], ['error']], 'each chat choice ends once, with an error')
    t.match(
      logs(h),
      [
        {
          level: 'error',
          message: /engine step failed: decoder\.onnx: out of device memory/,
          fields: { error: 'decoder.onnx: out of device memory', stack: /Error: decoder\.onnx/ },
        },
      ],
      'the cause, for the host to log',
    )
    t.same(h.loop.stats(), IDLE_STATS, 'nothing left in the engine, the scheduler or the denoiser')

    await h.loop.submit('next', chat({ maxNewTokens: 3 }), Date.now())
    await h.until(() => ended(h, 'next', 1))
    t.same(endings(h.updates('next'), 1), [['length']], 'the loop serves the next request')
  },
)

t.test(
  'a step that throws while an image request denoises one image and computes the other: one imageFailed, and no image after it',
  async (t) => {
    const engine = new FakeLoopEngine()
    // One sequence at a time: image 1's token phase starts once image 0 denoises.
    const h = loopHarness({ engine, painter: new FakePainter(40), limits: { maxNumSeqs: 1 } })
    t.teardown(() => h.stop())
    failingOn(engine, ['img#1'])
    await h.loop.submitImage('img', image({ n: 2 }), Date.now())
    await h.until(() => failed(h, 'img').length > 0)
    await h.until((m) => m.at(-1)?.type === 'gauges')
    t.equal(failed(h, 'img').length, 1, 'exactly one imageFailed')
    t.same(
      h.about('img').filter((m) => m.type === 'image'),
      [],
      'image 0 is not delivered after its request failed',
    )
    t.same(h.loop.stats(), IDLE_STATS)
  },
)

t.test('a chat step that throws fails an image request that is only denoising', async (t) => {
  const engine = new FakeLoopEngine()
  const h = loopHarness({ engine, painter: new FakePainter(40) })
  t.teardown(() => h.stop())
  await h.loop.submitImage('img', image(), Date.now())
  await h.until(() => h.about('img').some((m) => m.type === 'imageProgress' && m.phase === 'denoise'))
  failingOn(engine, ['chat#0'])
  await h.loop.submit('chat', chat({ maxNewTokens: 5 }), Date.now())
  await h.until(() => ended(h, 'chat', 1) && failed(h, 'img').length > 0)
  await h.until((m) => m.at(-1)?.type === 'gauges')
  t.equal(failed(h, 'img').length, 1)
  t.same(endings(h.updates('chat'), 1), [['error']])
  t.same(h.loop.stats(), IDLE_STATS)
})

t.test('after one choice finished, a step that throws ends each other choice once', async (t) => {
  const engine = new FakeLoopEngine()
  engine.stopAfter = (id) => (id === 'chat#0' ? 1 : Number.POSITIVE_INFINITY)
  const h = loopHarness({ engine })
  t.teardown(() => h.stop())
  await h.loop.submit('chat', chat({ n: 3, maxNewTokens: 30 }), Date.now())
  await h.until(() => endings(h.updates('chat'), 1)[0]?.length === 1)
  failingOn(engine, ['chat#1', 'chat#2'])
  await h.until(() => ended(h, 'chat', 3))
  await h.until((m) => m.at(-1)?.type === 'gauges')
  t.same(
    endings(h.updates('chat'), 3),
    [['stop'], ['error'], ['error']],
    'choice 0 keeps its stop; 1 and 2 end once each',
  )
  t.same(h.loop.stats(), IDLE_STATS)
})
