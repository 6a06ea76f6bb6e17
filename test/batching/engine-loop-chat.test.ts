/**
 * The engine loop's chat flow alone, over the fake engine (no model): choices
 * stream to one finish each, the context rule sizes and refuses requests, an
 * abort ends every live choice, a deadline ends them with 'timeout'; nothing
 * is left behind.
 */
import t from 'tap'
import type { GenerateRequest } from '../../src/batching/client-types.js'
import { GREEDY } from '../../src/engine/types.js'
import { FakeLoopEngine } from './fixtures/fake-loop-engine.js'
import { ended, endings, loopHarness } from './fixtures/loop-harness.js'
import { IDLE_STATS } from '../helpers/idle-stats.js'

/** Three words: a prompt of 5 blocks in the fake engine. */
const chat = (extra: Partial<GenerateRequest> = {}): GenerateRequest => ({
  messages: [{ role: 'user', content: 'one two three' }],
  n: 1,
  sampling: GREEDY,
  stop: [],
  ...extra,
})

t.test('each choice streams its blocks to exactly one finish, and nothing is left', async (t) => {
  const h = loopHarness()
  t.teardown(() => h.stop())
  await h.loop.submit('a', chat({ n: 2, maxNewTokens: 3 }), Date.now())
  t.match(h.about('a')[0], { type: 'admitted', promptTokens: 5 })
  await h.until(() => ended(h, 'a', 2))
  const updates = h.updates('a')
  for (const choice of [0, 1])
    t.same(
      updates.filter((u) => u.choice === choice).flatMap((u) => u.tokenIds),
      [100, 101, 102],
      `choice ${choice}'s blocks`,
    )
  t.same(endings(updates, 2), [['length'], ['length']])
  t.same(h.loop.stats(), IDLE_STATS)
})

t.test('without max tokens a request gets the rest of the context, capped by the request limit', async (t) => {
  const h = loopHarness({ engine: new FakeLoopEngine(12) })
  t.teardown(() => h.stop())
  await h.loop.submit('capped', chat({ maxNewTokensLimit: 4 }), Date.now())
  await h.loop.submit('rest', chat(), Date.now())
  await h.until(() => ended(h, 'capped', 1) && ended(h, 'rest', 1))
  t.equal(h.updates('capped').flatMap((u) => u.tokenIds).length, 4)
  t.equal(h.updates('rest').flatMap((u) => u.tokenIds).length, 12 - 5, 'the context of 12 less the prompt of 5')
})

t.test('a request over the context is refused at submit with the numbers; nothing is queued', async (t) => {
  const h = loopHarness({ engine: new FakeLoopEngine(64) })
  t.teardown(() => h.stop())
  await h.loop.submit('long', chat({ n: 2, maxNewTokens: 60 }), Date.now())
  await h.loop.submit('big-prompt', chat({ maxPromptTokens: 4 }), Date.now())
  await h.loop.submit(
    'full',
    { ...chat(), messages: [{ role: 'user', content: Array.from({ length: 62 }, () => 'w').join(' ') }] },
    Date.now(),
  )
  t.match(h.about('long'), [
    {
      type: 'rejected',
      error: {
        code: 'context_length_exceeded',
        message:
          "This model's maximum context length is 64 tokens. However, you requested 65 tokens (5 in the messages, 60 in the completion). Please reduce the length of the messages or completion.",
      },
    },
  ])
  t.match(h.about('big-prompt'), [
    {
      type: 'rejected',
      error: {
        code: 'context_length_exceeded',
        message: /The prompt has 5 tokens \(0 of them image positions\); this server accepts at most 4\./,
      },
    },
  ])
  t.match(
    h.about('full'),
    [
      {
        type: 'rejected',
        error: {
          code: 'context_length_exceeded',
          message: /you requested 65 tokens \(64 in the messages, 1 in the completion\)/,
        },
      },
    ],
    'a prompt filling the context leaves no room for a default',
  )
  t.same(h.loop.stats(), IDLE_STATS)
})

t.test('an abort ends every live choice, also after another choice finished', async (t) => {
  const engine = new FakeLoopEngine()
  // Choice 0 stops after one block; choices 1 and 2 would run to their max tokens.
  engine.stopAfter = (id) => (id.endsWith('#0') ? 1 : Number.POSITIVE_INFINITY)
  const h = loopHarness({ engine })
  t.teardown(() => h.stop())
  await h.loop.submit('a', chat({ n: 3, maxNewTokens: 40 }), Date.now())
  await h.until(() => endings(h.updates('a'), 1)[0]?.length === 1)
  h.loop.abort('a')
  const seen = h.updates('a').length
  await h.until((m) => m.at(-1)?.type === 'gauges' && h.loop.stats().running === 0)
  t.equal(h.updates('a').length, seen, 'no news of the request after the abort')
  t.same(h.loop.stats(), IDLE_STATS, 'choices 1 and 2 are gone')
})

t.test('a request past its deadline ends each choice with timeout', async (t) => {
  const h = loopHarness()
  t.teardown(() => h.stop())
  await h.loop.submit('late', chat({ n: 2, maxNewTokens: 10, timeoutMs: 0 }), Date.now())
  await h.until(() => ended(h, 'late', 2))
  t.same(endings(h.updates('late'), 2), [['timeout'], ['timeout']])
  t.same(h.loop.stats(), IDLE_STATS)
})

t.test('a preempted sequence is computed again and gives the same blocks', async (t) => {
  // KV for two contexts of 16 only: the third sequence's growth preempts the newest.
  const h = loopHarness({ engine: new FakeLoopEngine(16), limits: { kvCapacity: 32, pageSize: 4, maxModelLength: 16 } })
  t.teardown(() => h.stop())
  for (const id of ['a', 'b', 'c']) await h.loop.submit(id, chat({ maxNewTokens: 8 }), Date.now())
  await h.until(() => ['a', 'b', 'c'].every((id) => ended(h, id, 1)))
  for (const id of ['a', 'b', 'c'])
    t.same(
      h.updates(id).flatMap((u) => u.tokenIds),
      [100, 101, 102, 103, 104, 105, 106, 107],
      id,
    )
  t.ok(
    h.messages.some((m) => m.type === 'step' && m.record.preemptions > 0),
    'a preemption happened',
  )
  t.same(h.loop.stats(), IDLE_STATS)
})
