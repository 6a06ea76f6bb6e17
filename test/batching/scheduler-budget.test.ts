import t from 'tap'
import { Scheduler, type SchedulerConfig } from '../../src/batching/engine-thread/scheduler/index.js'
import { FakeEngine } from './fixtures/fake-engine.js'

const config = (over: Partial<SchedulerConfig> = {}): SchedulerConfig => ({
  maxNumSeqs: 4,
  maxBatchedTokens: 64,
  kvCapacity: 4096,
  pageSize: 16,
  maxModelLength: 2048,
  ...over,
})

t.test('a 1000-block prompt alone is prefilled 64 blocks per step, then decodes one block per step', async (t) => {
  const engine = new FakeEngine(new Scheduler(config()))
  engine.add({ id: 'long', promptLength: 1000, maxNewTokens: 2, arrivalTime: 0 })
  for (let step = 1; step <= 15; step++) {
    t.strictSame(engine.step().scheduled, [{ id: 'long', numBlocks: 64, isPrefill: true }], `step ${step}`)
  }
  t.strictSame(engine.step().scheduled, [{ id: 'long', numBlocks: 40, isPrefill: true }])
  t.equal(engine.scheduler.get('long')?.numTokens, 1001)
  t.strictSame(engine.step().scheduled, [{ id: 'long', numBlocks: 1, isPrefill: false }])
  t.strictSame(engine.ended, [{ id: 'long', status: 'finished_length', numGenerated: 2 }])
})

t.test(
  'a 1000-block prompt is chunked by the budget left after 3 running decodes, which get 1 block every step',
  async (t) => {
    const engine = new FakeEngine(new Scheduler(config()))
    for (const id of ['a', 'b', 'c']) engine.add({ id, promptLength: 4, maxNewTokens: 100, arrivalTime: 0 })
    t.equal(engine.step().numBatchedBlocks, 12)
    engine.add({ id: 'long', promptLength: 1000, maxNewTokens: 2, arrivalTime: 1 })
    const decodes = ['a', 'b', 'c'].map((id) => ({ id, numBlocks: 1, isPrefill: false }))
    for (let step = 1; step <= 16; step++) {
      const out = engine.step()
      t.strictSame(out.scheduled, [...decodes, { id: 'long', numBlocks: 61, isPrefill: true }], `chunk ${step}`)
      t.equal(out.numBatchedBlocks, 64)
      t.equal(engine.scheduler.get('long')?.numComputed, 61 * step)
    }
    const last = engine.step()
    t.strictSame(last.scheduled, [...decodes, { id: 'long', numBlocks: 24, isPrefill: true }])
    t.equal(last.numBatchedBlocks, 27)
    t.strictSame(engine.step().scheduled, [...decodes, { id: 'long', numBlocks: 1, isPrefill: false }])
    t.equal(engine.scheduler.get('a')?.numGenerated, 19)
  },
)

t.test('every step stays within the budget and schedules decodes before prefill chunks', async (t) => {
  const engine = new FakeEngine(
    new Scheduler(config({ maxNumSeqs: 8, maxBatchedTokens: 32, kvCapacity: 512, maxModelLength: 256 })),
  )
  let seed = 7
  const next = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31
    return 1 + (seed % n)
  }
  for (let i = 0; i < 40; i++) {
    engine.add({ id: `r${i}`, promptLength: next(120), maxNewTokens: next(30), arrivalTime: i })
    engine.step()
  }
  engine.runToEnd()
  t.ok(
    engine.steps.every((s) => s.numBatchedBlocks <= 32),
    'budget held',
  )
  t.ok(
    engine.steps.some((s) => s.numBatchedBlocks === 32),
    'budget filled when work waits',
  )
  t.ok(
    engine.steps.some((s) => s.preempted.length > 0),
    'the KV was short at times',
  )
  for (const step of engine.steps) {
    const kinds = step.scheduled.map((e) => (e.isPrefill ? 'p' : 'd')).join('')
    t.match(kinds, /^d*p*$/)
  }
  t.equal(engine.ended.length, 40)
  t.equal(engine.scheduler.kvUsage(), 0)
})

t.test('maxNumSeqs caps the running sequences and a freed seat admits the next one', async (t) => {
  const engine = new FakeEngine(new Scheduler(config({ maxNumSeqs: 2 })))
  engine.add({ id: 'a', promptLength: 4, maxNewTokens: 1, arrivalTime: 0 })
  engine.add({ id: 'b', promptLength: 4, maxNewTokens: 3, arrivalTime: 1 })
  engine.add({ id: 'c', promptLength: 4, maxNewTokens: 3, arrivalTime: 2 })
  engine.add({ id: 'd', promptLength: 4, maxNewTokens: 3, arrivalTime: 3 })
  t.strictSame(
    engine.step().scheduled.map((e) => e.id),
    ['a', 'b'],
  )
  t.equal(engine.scheduler.numRunning, 1, 'a finished after its single block')
  t.equal(engine.scheduler.numWaiting, 2)
  t.strictSame(engine.step().scheduled, [
    { id: 'b', numBlocks: 1, isPrefill: false },
    { id: 'c', numBlocks: 4, isPrefill: true },
  ])
  t.equal(engine.scheduler.numRunning, 2)
  t.equal(engine.scheduler.get('d')?.status, 'waiting')
  t.equal(engine.scheduler.waitingTokens, 4)
})

t.test('a config that could livelock is refused at construction, naming the option', async (t) => {
  t.throws(() => new Scheduler(config({ maxBatchedTokens: 3 })), {
    code: 'SCHEDULER_CONFIG_INVALID',
    message: /maxBatchedTokens \(3\) must be >= maxNumSeqs \(4\)/,
  })
  t.throws(() => new Scheduler(config({ kvCapacity: 2000 })), {
    code: 'SCHEDULER_CONFIG_INVALID',
    message: /maxModelLength \(2048\)/,
  })
  t.throws(() => new Scheduler(config({ pageSize: 0 })), { code: 'SCHEDULER_CONFIG_INVALID', message: /pageSize/ })
  t.throws(() => new Scheduler(config({ maxNumSeqs: 1.5 })), {
    code: 'SCHEDULER_CONFIG_INVALID',
    message: /maxNumSeqs/,
  })
})

t.test('a request that does not fit maxModelLength, or repeats an id, is refused by add', async (t) => {
  const scheduler = new Scheduler(config())
  t.throws(() => scheduler.add({ id: 'x', promptLength: 2000, maxNewTokens: 49, arrivalTime: 0 }), {
    code: 'SCHEDULER_REQUEST_INVALID',
  })
  t.throws(() => scheduler.add({ id: 'x', promptLength: 0, maxNewTokens: 1, arrivalTime: 0 }), {
    code: 'SCHEDULER_REQUEST_INVALID',
  })
  scheduler.add({ id: 'x', promptLength: 2000, maxNewTokens: 48, arrivalTime: 0 })
  t.throws(() => scheduler.add({ id: 'x', promptLength: 1, maxNewTokens: 1, arrivalTime: 0 }), {
    code: 'SCHEDULER_DUPLICATE_ID',
  })
  t.equal(scheduler.numWaiting, 1)
})
