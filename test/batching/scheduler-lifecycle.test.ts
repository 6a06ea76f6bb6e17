import t from 'tap'
import { KvAccounting, Scheduler, type SchedulerConfig } from '../../src/batching/engine-thread/scheduler/index.js'
import { FakeEngine } from './fixtures/fake-engine.js'

const config: SchedulerConfig = {
  maxNumSeqs: 4,
  maxBatchedTokens: 16,
  kvCapacity: 256,
  pageSize: 16,
  maxModelLength: 128,
}

/** Records every free() call and whether it released anything. */
class CountingKv extends KvAccounting {
  readonly frees: Array<[string, boolean]> = []

  override free(id: string): boolean {
    const released = super.free(id)
    this.frees.push([id, released])
    return released
  }
}

const counted = () => {
  const kv = new CountingKv({ capacity: config.kvCapacity, pageSize: config.pageSize })
  return { kv, engine: new FakeEngine(new Scheduler(config, { kv })) }
}

t.test('aborting a waiting sequence ends it as finished_abort, and a second abort returns false', async (t) => {
  const { kv, engine } = counted()
  engine.add({ id: 'w', promptLength: 8, maxNewTokens: 4, arrivalTime: 0 })
  t.equal(engine.scheduler.abort('w'), true)
  t.equal(engine.scheduler.get('w')?.status, 'finished_abort')
  t.equal(engine.scheduler.abort('w'), false)
  t.strictSame(kv.frees, [['w', false]], 'one free call, nothing held')
  t.equal(engine.scheduler.numWaiting, 0)
  t.equal(engine.scheduler.hasWork(), false)
  t.strictSame(engine.scheduler.schedule(), { scheduled: [], preempted: [], numBatchedBlocks: 0 })
})

t.test('aborting a running sequence between steps frees its pages at once and exactly once', async (t) => {
  const { kv, engine } = counted()
  engine.add({ id: 'r', promptLength: 20, maxNewTokens: 50, arrivalTime: 0 })
  engine.add({ id: 'other', promptLength: 4, maxNewTokens: 3, arrivalTime: 1 })
  engine.step()
  engine.step()
  t.equal(kv.pagesHeld('r'), 2)
  t.equal(engine.scheduler.kvUsage(), 3 / 16)
  t.equal(engine.scheduler.abort('r'), true)
  t.equal(engine.scheduler.kvUsage(), 1 / 16)
  t.equal(engine.scheduler.abort('r'), false)
  engine.runToEnd()
  t.strictSame(kv.frees, [
    ['r', true],
    ['other', true],
  ])
  t.strictSame(engine.ended, [
    { id: 'r', status: 'finished_abort', numGenerated: 1 },
    { id: 'other', status: 'finished_length', numGenerated: 3 },
  ])
  t.equal(engine.scheduler.kvUsage(), 0)
})

t.test('an abort while a step is in flight frees the KV at once and drops that result', async (t) => {
  const scheduler = new Scheduler(config)
  scheduler.add({ id: 'a', promptLength: 8, maxNewTokens: 4, arrivalTime: 0 })
  scheduler.add({ id: 'b', promptLength: 8, maxNewTokens: 4, arrivalTime: 1 })
  scheduler.schedule()
  t.equal(scheduler.abort('a'), true)
  t.equal(scheduler.kv.pagesHeld('a'), 0)
  t.strictSame(
    scheduler.update([
      { id: 'a', sampled: true },
      { id: 'b', sampled: true },
    ]),
    [],
  )
  t.equal(scheduler.get('a')?.numTokens, 8, 'the dropped result changed nothing')
  t.equal(scheduler.get('b')?.numTokens, 9)
  t.strictSame(scheduler.schedule().scheduled, [{ id: 'b', numBlocks: 1, isPrefill: false }])
})

t.test('abort of an unknown or already finished id returns false and changes nothing', async (t) => {
  const scheduler = new Scheduler(config)
  t.equal(scheduler.abort('nobody'), false)
  scheduler.add({ id: 'a', promptLength: 4, maxNewTokens: 1, arrivalTime: 0 })
  scheduler.schedule()
  t.strictSame(scheduler.update([{ id: 'a', sampled: true }]), ['a'])
  t.equal(scheduler.abort('a'), false)
  t.equal(scheduler.get('a')?.status, 'finished_length')
})

t.test('the engine can end a sequence with stop or error, and reaching maxNewTokens ends it with length', async (t) => {
  const scheduler = new Scheduler(config)
  for (const id of ['stop', 'error', 'length']) scheduler.add({ id, promptLength: 4, maxNewTokens: 2, arrivalTime: 0 })
  scheduler.schedule()
  t.strictSame(
    scheduler.update([
      { id: 'stop', sampled: true, finished: 'stop' },
      { id: 'error', sampled: false, finished: 'error' },
      { id: 'length', sampled: true },
    ]),
    ['stop', 'error'],
  )
  scheduler.schedule()
  t.strictSame(scheduler.update([{ id: 'length', sampled: true }]), ['length'])
  t.strictSame(
    scheduler.takeFinished().map((v) => [v.id, v.status, v.numGenerated]),
    [
      ['stop', 'finished_stop', 1],
      ['error', 'finished_error', 0],
      ['length', 'finished_length', 2],
    ],
  )
  t.equal(scheduler.get('stop'), undefined, 'forgotten once taken')
  t.strictSame(scheduler.takeFinished(), [])
  t.equal(scheduler.kvUsage(), 0)
})

t.test('a numComputedDelta below the scheduled blocks leaves the rest for the next step', async (t) => {
  const scheduler = new Scheduler(config)
  scheduler.add({ id: 'a', promptLength: 10, maxNewTokens: 2, arrivalTime: 0 })
  t.strictSame(scheduler.schedule().scheduled, [{ id: 'a', numBlocks: 10, isPrefill: true }])
  scheduler.update([{ id: 'a', numComputedDelta: 6, sampled: false }])
  t.equal(scheduler.get('a')?.numComputed, 6)
  t.strictSame(scheduler.schedule().scheduled, [{ id: 'a', numBlocks: 4, isPrefill: true }])
})

t.test('update refuses results that do not match the step, and changes nothing', async (t) => {
  const scheduler = new Scheduler(config)
  scheduler.add({ id: 'a', promptLength: 4, maxNewTokens: 3, arrivalTime: 0 })
  scheduler.add({ id: 'b', promptLength: 20, maxNewTokens: 3, arrivalTime: 1 })
  scheduler.schedule()
  const ok = { id: 'a', sampled: true }
  const bad = [
    [ok, { id: 'b', sampled: false }, { id: 'zzz', sampled: false }],
    [ok],
    [ok, ok, { id: 'b', sampled: false }],
    [ok, { id: 'b', sampled: true }],
    [
      { id: 'a', sampled: false },
      { id: 'b', sampled: false },
    ],
    [ok, { id: 'b', numComputedDelta: 13, sampled: false }],
  ]
  for (const results of bad) t.throws(() => scheduler.update(results), { code: 'SCHEDULER_UPDATE_MISMATCH' })
  t.strictSame([scheduler.get('a')?.numComputed, scheduler.get('b')?.numComputed], [0, 0])
  t.strictSame(scheduler.update([ok, { id: 'b', sampled: false }]), [])
  t.strictSame([scheduler.get('a')?.numTokens, scheduler.get('b')?.numComputed], [5, 12])
})

t.test(
  'schedule before the previous step is updated throws STEP_IN_FLIGHT, but an empty step needs no update',
  async (t) => {
    const scheduler = new Scheduler(config)
    scheduler.schedule()
    scheduler.schedule()
    scheduler.add({ id: 'a', promptLength: 4, maxNewTokens: 3, arrivalTime: 0 })
    scheduler.schedule()
    t.throws(() => scheduler.schedule(), { code: 'SCHEDULER_STEP_IN_FLIGHT' })
    t.throws(() => scheduler.update([]), { code: 'SCHEDULER_UPDATE_MISMATCH' })
  },
)
