import t from 'tap'
import {
  Scheduler,
  deadlinePassed,
  expiredInQueue,
  isFinished,
  queueTimeMs,
} from '../../src/batching/engine-thread/scheduler/index.js'
import { FakeEngine } from './fixtures/fake-engine.js'

t.test('a queue timeout or a deadline is reached at its boundary, and no limit never expires', async (t) => {
  t.equal(expiredInQueue(109, 10, 100), false)
  t.equal(expiredInQueue(110, 10, 100), true)
  t.equal(expiredInQueue(1e12, 10, undefined), false)
  t.equal(deadlinePassed(499, 500), false)
  t.equal(deadlinePassed(500, 500), true)
  t.equal(deadlinePassed(1e12, undefined), false)
  t.equal(queueTimeMs(25, 10), 15)
  t.equal(queueTimeMs(5, 10), 0)
})

t.test(
  'expire ends a waiting sequence past its queue timeout and a running one past its deadline with finished_timeout',
  async (t) => {
    const engine = new FakeEngine(
      new Scheduler({ maxNumSeqs: 1, maxBatchedTokens: 16, kvCapacity: 64, pageSize: 16, maxModelLength: 64 }),
    )
    const scheduler = engine.scheduler
    engine.add({ id: 'run', promptLength: 4, maxNewTokens: 10, arrivalTime: 0, deadline: 500 })
    engine.add({ id: 'queued', promptLength: 4, maxNewTokens: 10, arrivalTime: 10, queueTimeoutMs: 100 })
    engine.add({ id: 'patient', promptLength: 4, maxNewTokens: 1, arrivalTime: 20 })
    engine.step()
    t.strictSame(scheduler.expire(109), [])
    t.strictSame(scheduler.expire(110), ['queued'])
    t.equal(scheduler.get('queued')?.status, 'finished_timeout')
    t.equal(scheduler.numWaiting, 1)
    t.strictSame(scheduler.expire(499), [])
    t.equal(scheduler.kvUsage(), 0.25)
    t.strictSame(scheduler.expire(500), ['run'])
    t.equal(scheduler.kvUsage(), 0)
    t.strictSame(scheduler.expire(500), [], 'expiry happens once')
    t.strictSame(engine.step().scheduled, [{ id: 'patient', numBlocks: 4, isPrefill: true }])
    t.strictSame(
      engine.ended.map((e) => [e.id, e.status]),
      [
        ['queued', 'finished_timeout'],
        ['run', 'finished_timeout'],
        ['patient', 'finished_length'],
      ],
    )
  },
)

t.test('the queue timeout stops counting once a sequence was scheduled, even when it is preempted later', async (t) => {
  const engine = new FakeEngine(
    new Scheduler({ maxNumSeqs: 4, maxBatchedTokens: 16, kvCapacity: 16, pageSize: 4, maxModelLength: 16 }),
  )
  engine.add({ id: 'a', promptLength: 4, maxNewTokens: 8, arrivalTime: 0 })
  engine.add({ id: 'b', promptLength: 4, maxNewTokens: 8, arrivalTime: 1, queueTimeoutMs: 50 })
  for (let i = 0; i < 6; i++) engine.step()
  t.equal(engine.scheduler.get('b')?.status, 'preempted')
  t.strictSame(engine.scheduler.expire(1_000), [])
  engine.runToEnd()
  t.strictSame(
    engine.ended.map((e) => [e.id, e.status]),
    [
      ['a', 'finished_length'],
      ['b', 'finished_length'],
    ],
  )
})

t.test('under aborts, timeouts, stops and preemptions every request ends in exactly one terminal status', async (t) => {
  const engine = new FakeEngine(
    new Scheduler({ maxNumSeqs: 5, maxBatchedTokens: 10, kvCapacity: 48, pageSize: 4, maxModelLength: 40 }),
    (block) => block % 10 === 3,
  )
  const scheduler = engine.scheduler
  let aborted = 0
  for (let step = 0; step < 400 && (step < 30 || scheduler.hasWork()); step++) {
    if (step < 30) {
      engine.add({
        id: `r${step}`,
        promptLength: 2 + (step % 9),
        maxNewTokens: 5 + (step % 13),
        arrivalTime: step * 10,
        queueTimeoutMs: step % 4 === 0 ? 30 : undefined,
        deadline: step % 5 === 0 ? step * 10 + 120 : undefined,
      })
    }
    if (step % 7 === 3 && scheduler.abort(`r${step - 2}`)) aborted += 1
    scheduler.expire(step * 10)
    engine.step()
  }
  engine.step()
  const ids = engine.ended.map((e) => e.id)
  t.equal(ids.length, 30)
  t.equal(new Set(ids).size, 30, 'no id ended twice')
  t.ok(engine.ended.every((e) => isFinished(e.status)))
  const statuses = new Set(engine.ended.map((e) => e.status))
  t.strictSame([...statuses].sort(), ['finished_abort', 'finished_length', 'finished_stop', 'finished_timeout'])
  t.equal(engine.ended.filter((e) => e.status === 'finished_abort').length, aborted)
  t.ok(
    engine.steps.some((s) => s.preempted.length > 0),
    'preemptions happened',
  )
  t.equal(scheduler.kvUsage(), 0)
  t.strictSame(scheduler.kv.sequencesHolding(), [])
})
