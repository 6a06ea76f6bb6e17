import t from 'tap'
import {
  Scheduler,
  type SchedulerConfig,
  type SchedulerRequest,
} from '../../src/batching/engine-thread/scheduler/index.js'
import { FakeEngine } from './fixtures/fake-engine.js'

/** 4-position pages, so a 4-block prompt fills one page and its 5th block takes a second. */
const tight = (pages: number): SchedulerConfig => ({
  maxNumSeqs: 4,
  maxBatchedTokens: 16,
  kvCapacity: pages * 4,
  pageSize: 4,
  maxModelLength: 16,
})

const short = (id: string, arrivalTime: number, priority = 0): SchedulerRequest => ({
  id,
  promptLength: 4,
  maxNewTokens: 8,
  arrivalTime,
  priority,
})

/** Steps until every sequence holds 8 positions (2 full pages each): the next decode needs a new page. */
function fillPages(engine: FakeEngine): void {
  for (let i = 0; i < 5; i++) {
    if (engine.step().preempted.length > 0) throw new Error('preempted while filling pages')
  }
}

t.test('when the KV cannot grow a decode, the newest running sequence is preempted and its pages freed', async (t) => {
  const engine = new FakeEngine(new Scheduler(tight(6)))
  for (const [i, id] of ['a', 'b', 'c'].entries()) engine.add(short(id, i))
  fillPages(engine)
  const scheduler = engine.scheduler
  t.equal(scheduler.kv.freePages, 0)
  const out = engine.step()
  t.strictSame(out.preempted, ['c'])
  t.strictSame(out.scheduled, [
    { id: 'a', numBlocks: 1, isPrefill: false },
    { id: 'b', numBlocks: 1, isPrefill: false },
  ])
  t.equal(scheduler.kv.pagesHeld('c'), 0)
  t.strictSame(scheduler.kv.sequencesHolding(), ['a', 'b'])
  t.strictSame(scheduler.get('c'), {
    id: 'c',
    status: 'preempted',
    priority: 0,
    arrivalTime: 2,
    promptLength: 4,
    maxNewTokens: 8,
    numTokens: 9,
    numComputed: 0,
    numGenerated: 5,
    numPreemptions: 1,
  })
  t.equal(scheduler.numWaiting, 1)
  t.equal(scheduler.waitingTokens, 9, 'prompt and generated blocks are prefilled again')
})

t.test(
  'a preempted sequence resumes with numComputed 0, is recomputed over all its blocks and gives the same output',
  async (t) => {
    const reference = new FakeEngine(new Scheduler(tight(16)))
    reference.add(short('a', 0))
    reference.add(short('b', 1))
    reference.runToEnd()
    t.strictSame(
      reference.steps.flatMap((s) => s.preempted),
      [],
    )

    const engine = new FakeEngine(new Scheduler(tight(4)))
    engine.add(short('a', 0))
    engine.add(short('b', 1))
    fillPages(engine)
    t.strictSame(engine.step().preempted, ['b'])
    t.strictSame(
      engine.step().scheduled.map((e) => e.id),
      ['a'],
      'b waits: its 9 blocks need 3 pages, 1 is free',
    )
    t.strictSame(
      engine.step().scheduled.map((e) => e.id),
      ['a'],
    )
    t.strictSame(engine.ended, [{ id: 'a', status: 'finished_length', numGenerated: 8 }])
    t.equal(engine.scheduler.get('b')?.numComputed, 0)
    t.strictSame(engine.step().scheduled, [{ id: 'b', numBlocks: 9, isPrefill: true }])
    t.equal(engine.scheduler.get('b')?.status, 'running')
    engine.runToEnd()
    t.strictSame(engine.ended[1], { id: 'b', status: 'finished_length', numGenerated: 8 })
    t.strictSame(engine.output('b', 4), reference.output('b', 4))
    t.strictSame(engine.output('a', 4), reference.output('a', 4))
    t.equal(engine.scheduler.kvUsage(), 0)
  },
)

t.test('the lowest priority is preempted before a newer sequence of higher priority', async (t) => {
  const engine = new FakeEngine(new Scheduler(tight(4)))
  engine.add(short('low', 0, 0))
  engine.add(short('high', 1, 5))
  fillPages(engine)
  const out = engine.step()
  t.strictSame(out.preempted, ['low'])
  t.strictSame(out.scheduled, [{ id: 'high', numBlocks: 1, isPrefill: false }])
})

t.test('a victim already scheduled in the step gives its block back to the budget', async (t) => {
  const engine = new FakeEngine(
    new Scheduler({ maxNumSeqs: 2, maxBatchedTokens: 4, kvCapacity: 8, pageSize: 4, maxModelLength: 8 }),
  )
  engine.add({ id: 'y', promptLength: 1, maxNewTokens: 7, arrivalTime: 0 })
  engine.step()
  engine.add({ id: 'x', promptLength: 6, maxNewTokens: 2, arrivalTime: 1, priority: 5 })
  t.strictSame(engine.step().scheduled, [
    { id: 'y', numBlocks: 1, isPrefill: false },
    { id: 'x', numBlocks: 3, isPrefill: true },
  ])
  const out = engine.step()
  t.strictSame(out, { scheduled: [{ id: 'x', numBlocks: 3, isPrefill: true }], preempted: ['y'], numBatchedBlocks: 3 })
  t.equal(engine.scheduler.get('y')?.status, 'preempted')
  t.equal(engine.scheduler.get('y')?.numTokens, 3)
  t.strictSame(engine.scheduler.kv.sequencesHolding(), ['x'])
  engine.runToEnd()
  t.strictSame(
    engine.ended.map((e) => [e.id, e.numGenerated]),
    [
      ['x', 2],
      ['y', 7],
    ],
  )
})

t.test(
  'under a tight KV every sequence finishes with its maxNewTokens, the greedy output of an unconstrained run, and the KV ends empty',
  async (t) => {
    const requests = Array.from({ length: 12 }, (_, i) => ({
      id: `s${i}`,
      promptLength: 3 + ((i * 5) % 11),
      maxNewTokens: 10 + ((i * 3) % 7),
      arrivalTime: i,
    }))
    const run = (kvCapacity: number) => {
      const engine = new FakeEngine(
        new Scheduler({ maxNumSeqs: 6, maxBatchedTokens: 12, kvCapacity, pageSize: 4, maxModelLength: 32 }),
      )
      for (const req of requests) engine.add(req)
      engine.runToEnd()
      return engine
    }
    const roomy = run(1024)
    const tightRun = run(40)
    const preemptions = tightRun.steps.flatMap((s) => s.preempted)
    t.ok(preemptions.length >= 3, `preempted ${preemptions.length} times`)
    t.strictSame(
      roomy.steps.flatMap((s) => s.preempted),
      [],
    )
    t.strictSame(
      [...tightRun.ended].sort((x, y) => x.id.localeCompare(y.id)),
      requests
        .map((r) => ({ id: r.id, status: 'finished_length', numGenerated: r.maxNewTokens }))
        .sort((x, y) => x.id.localeCompare(y.id)),
      'each id ended exactly once, with all its blocks',
    )
    for (const req of requests)
      t.strictSame(tightRun.output(req.id, req.promptLength), roomy.output(req.id, req.promptLength), req.id)
    t.equal(tightRun.scheduler.kvUsage(), 0)
    t.equal(tightRun.scheduler.kv.usedPositions, 0)
    t.equal(tightRun.scheduler.hasWork(), false)
  },
)
