/** Choices of one request share a prompt: the later ones wait until the first has computed it. */
import t from 'tap'
import { Scheduler, type SchedulerConfig } from '../../src/batching/engine-thread/scheduler/index.js'
import { FakeEngine } from './fixtures/fake-engine.js'

const config = (over: Partial<SchedulerConfig> = {}): SchedulerConfig => ({
  maxNumSeqs: 4,
  maxBatchedTokens: 16,
  kvCapacity: 4096,
  pageSize: 16,
  maxModelLength: 2048,
  ...over,
})

t.test(
  'a sequence with promptFrom is admitted only after its source computed the prompt, and nothing overtakes it',
  async (t) => {
    const engine = new FakeEngine(new Scheduler(config()))
    engine.add({ id: 'a', promptLength: 40, maxNewTokens: 3, arrivalTime: 0 })
    engine.add({ id: 'b', promptLength: 40, maxNewTokens: 3, arrivalTime: 0, promptFrom: 'a' })
    engine.add({ id: 'c', promptLength: 4, maxNewTokens: 3, arrivalTime: 1 })
    t.strictSame(engine.step().scheduled, [{ id: 'a', numBlocks: 16, isPrefill: true }], 'b waits, and c behind it')
    t.strictSame(engine.step().scheduled, [{ id: 'a', numBlocks: 16, isPrefill: true }])
    t.strictSame(
      engine.step().scheduled,
      [{ id: 'a', numBlocks: 8, isPrefill: true }],
      'budget is left, but the prompt is not computed yet',
    )
    t.strictSame(engine.step().scheduled, [
      { id: 'a', numBlocks: 1, isPrefill: false },
      { id: 'b', numBlocks: 15, isPrefill: true },
    ])
    engine.runToEnd()
    t.same(
      engine.ended.map((e) => e.id),
      ['a', 'b', 'c'],
    )
    t.equal(engine.scheduler.kvUsage(), 0)
  },
)

t.test('a source that ends before computing the prompt releases the sequence waiting on it', async (t) => {
  const engine = new FakeEngine(new Scheduler(config()))
  engine.add({ id: 'a', promptLength: 40, maxNewTokens: 3, arrivalTime: 0 })
  engine.add({ id: 'b', promptLength: 40, maxNewTokens: 3, arrivalTime: 0, promptFrom: 'a' })
  t.strictSame(engine.step().scheduled, [{ id: 'a', numBlocks: 16, isPrefill: true }])
  t.equal(engine.scheduler.abort('a'), true)
  t.strictSame(engine.step().scheduled, [{ id: 'b', numBlocks: 16, isPrefill: true }])
})

t.test('a source the scheduler does not know (already finished and taken) does not hold anything back', async (t) => {
  const engine = new FakeEngine(new Scheduler(config()))
  engine.add({ id: 'b', promptLength: 8, maxNewTokens: 2, arrivalTime: 0, promptFrom: 'gone' })
  t.strictSame(engine.step().scheduled, [{ id: 'b', numBlocks: 8, isPrefill: true }])
})
