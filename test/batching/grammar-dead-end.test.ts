/**
 * A grammar that refuses the token it let through (a dead end: it cannot
 * happen with a correct grammar engine) ends that request with an error, is
 * logged (a 'log' message for the host's logger), and leaves the other
 * request of the batch to finish normally.
 */
import t from 'tap'
import { EngineLoop } from '../../src/batching/engine-thread/engine-loop.js'
import type { SequenceUpdate, WorkerToHost } from '../../src/batching/protocol.js'
import { Scheduler } from '../../src/batching/engine-thread/scheduler/index.js'
import { TokenConstraint } from '../../src/engine/grammar/token-constraint.js'
import { GREEDY } from '../../src/engine/types.js'
import { tinyEngine } from '../helpers/engine.js'
import { IDLE_STATS } from '../helpers/idle-stats.js'

t.test('a dead-end grammar ends its request with an error; the batch goes on', async (t) => {
  const { engine, dispose } = await tinyEngine()
  t.teardown(dispose)
  let disposed = 0
  // Allows every id, then refuses the second token it is given.
  let accepted = 0
  engine.constraintFor = async () =>
    new TokenConstraint({
      getNextTokenBitmask: async () => new Int32Array(Math.ceil(engine.model.config.vocab.vocab_size / 32)).fill(-1),
      acceptToken: () => ++accepted < 2,
      isTerminated: () => false,
      dispose: () => void disposed++,
    })
  const logged: string[] = []
  const scheduler = new Scheduler({
    maxNumSeqs: 8,
    maxBatchedTokens: 256,
    kvCapacity: 16_384,
    pageSize: 16,
    maxModelLength: 4096,
  })
  const updates: SequenceUpdate[] = []
  let ended = 0
  const loop = new EngineLoop(
    engine,
    scheduler,
    (message: WorkerToHost) => {
      if (message.type === 'log') logged.push(`${message.level}: ${message.message}`)
      if (message.type !== 'step') return
      updates.push(...message.updates)
      ended += message.updates.filter((u) => u.finishReason !== undefined).length
      if (ended === 2) loop.stop()
    },
    () => undefined,
  )
  const running = loop.run()
  const request = {
    messages: [{ role: 'user' as const, content: 'Hello' }],
    n: 1,
    sampling: GREEDY,
    maxNewTokens: 6,
    stop: [],
  }
  await loop.submit('json', { ...request, responseFormat: { type: 'json_object' } }, Date.now())
  await loop.submit('free', request, Date.now())
  await running

  const of = (reqId: string) => updates.filter((u) => u.reqId === reqId)
  t.same(
    of('json').map((u) => [u.tokenIds.length, u.finishReason]),
    [
      [1, undefined],
      [0, 'error'],
    ],
    'one token, then the error without the refused token',
  )
  t.equal(of('free').at(-1)?.finishReason, 'length', 'the other request ran to its end')
  t.equal(
    of('free').reduce((n, u) => n + u.tokenIds.length, 0),
    6,
  )
  t.match(logged, [/^error: sequence json#0 failed: the response format's grammar refused token \d+$/])
  t.equal(disposed, 1, 'the grammar state was freed')
  t.same(loop.stats(), IDLE_STATS)
})
