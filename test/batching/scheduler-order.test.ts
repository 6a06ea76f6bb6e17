import t from 'tap'
import { Scheduler } from '../../src/batching/engine-thread/scheduler/index.js'
import { FakeEngine } from './fixtures/fake-engine.js'

const ids = (engine: FakeEngine) => engine.step().scheduled.map((e) => e.id)

t.test('waiting sequences are admitted higher priority first', async (t) => {
  const engine = new FakeEngine(
    new Scheduler({ maxNumSeqs: 1, maxBatchedTokens: 16, kvCapacity: 64, pageSize: 16, maxModelLength: 64 }),
  )
  engine.add({ id: 'low', promptLength: 4, maxNewTokens: 1, arrivalTime: 0 })
  engine.add({ id: 'high', promptLength: 4, maxNewTokens: 1, arrivalTime: 1, priority: 9 })
  engine.add({ id: 'mid', promptLength: 4, maxNewTokens: 1, arrivalTime: 2, priority: 5 })
  t.strictSame([ids(engine), ids(engine), ids(engine)], [['high'], ['mid'], ['low']])
})

t.test('within a priority, sequences are served by arrival time, then by the order they were added', async (t) => {
  const scheduler = new Scheduler({
    maxNumSeqs: 4,
    maxBatchedTokens: 64,
    kvCapacity: 256,
    pageSize: 16,
    maxModelLength: 64,
  })
  for (const [id, arrivalTime] of [
    ['b', 5],
    ['a', 3],
    ['c', 5],
    ['d', 3],
  ] as const) {
    scheduler.add({ id, promptLength: 4, maxNewTokens: 2, arrivalTime })
  }
  t.strictSame(
    scheduler.schedule().scheduled.map((e) => e.id),
    ['a', 'd', 'b', 'c'],
  )
})

t.test('a preempted sequence goes back ahead of later arrivals of its priority', async (t) => {
  const engine = new FakeEngine(
    new Scheduler({ maxNumSeqs: 4, maxBatchedTokens: 16, kvCapacity: 16, pageSize: 4, maxModelLength: 16 }),
  )
  engine.add({ id: 'a', promptLength: 4, maxNewTokens: 8, arrivalTime: 0 })
  engine.add({ id: 'b', promptLength: 4, maxNewTokens: 8, arrivalTime: 1 })
  engine.step()
  engine.step()
  engine.add({ id: 'c', promptLength: 4, maxNewTokens: 2, arrivalTime: 2 })
  for (let i = 0; i < 3; i++) t.strictSame(ids(engine), ['a', 'b'], 'c waits: the KV is full')
  const out = engine.step()
  t.strictSame(out.preempted, ['b'])
  t.strictSame(ids(engine), ['a'])
  t.strictSame(ids(engine), ['a'])
  t.strictSame(engine.step().scheduled, [
    { id: 'b', numBlocks: 9, isPrefill: true },
    { id: 'c', numBlocks: 4, isPrefill: true },
  ])
})

t.test(
  'a long prompt at the head is not overtaken by later short prompts when seats free up, and advances every step once admitted',
  async (t) => {
    const engine = new FakeEngine(
      new Scheduler({ maxNumSeqs: 3, maxBatchedTokens: 8, kvCapacity: 1024, pageSize: 16, maxModelLength: 256 }),
    )
    for (const id of ['s0', 's1', 's2']) engine.add({ id, promptLength: 4, maxNewTokens: 6, arrivalTime: 0 })
    engine.step()
    engine.add({ id: 'long', promptLength: 100, maxNewTokens: 2, arrivalTime: 1 })
    let admittedAt = 0
    let computed = 0
    for (let step = 1; step <= 100 && !engine.ended.some((e) => e.id === 'long'); step++) {
      engine.add({ id: `late${step}`, promptLength: 4, maxNewTokens: 6, arrivalTime: 1 + step })
      const scheduled = engine.step().scheduled.map((e) => e.id)
      const long = engine.scheduler.get('long')
      if (long?.status === 'waiting') {
        t.notOk(
          scheduled.some((id) => id.startsWith('late')),
          `step ${step}: no later prompt overtakes`,
        )
        continue
      }
      admittedAt ||= step
      if (long !== undefined && long.numTokens === long.promptLength) {
        t.ok(long.numComputed > computed, `step ${step}: the long prompt advanced`)
        computed = long.numComputed
      }
    }
    t.equal(admittedAt, 6, 'admitted at the first step with a free seat')
    t.strictSame(
      engine.ended.find((e) => e.id === 'long'),
      { id: 'long', status: 'finished_length', numGenerated: 2 },
    )
    t.equal(engine.steps.length, 20, 'finished 13 steps after admission, under a steady stream of short prompts')
  },
)

t.test(
  'a long prompt whose chunk does not fit the KV yet is not overtaken by a short prompt that would fit',
  async (t) => {
    const engine = new FakeEngine(
      new Scheduler({ maxNumSeqs: 4, maxBatchedTokens: 32, kvCapacity: 32, pageSize: 4, maxModelLength: 32 }),
    )
    engine.add({ id: 'a', promptLength: 24, maxNewTokens: 4, arrivalTime: 0 })
    t.strictSame(ids(engine), ['a'])
    engine.add({ id: 'long', promptLength: 20, maxNewTokens: 2, arrivalTime: 1 })
    engine.add({ id: 'short', promptLength: 4, maxNewTokens: 2, arrivalTime: 2 })
    for (let i = 0; i < 3; i++) t.strictSame(ids(engine), ['a'], 'long needs 5 pages, 1 is free; short would fit in it')
    t.strictSame(engine.step().scheduled, [
      { id: 'long', numBlocks: 20, isPrefill: true },
      { id: 'short', numBlocks: 4, isPrefill: true },
    ])
  },
)
