import t from 'tap'
import { KvAccounting } from '../../src/batching/engine-thread/scheduler/index.js'
import { KelixError } from '../../src/errors/kelix-error.js'

t.test('allocation rounds up to whole pages and usage counts pages over total', async (t) => {
  const kv = new KvAccounting({ capacity: 64, pageSize: 16 })
  t.equal(kv.totalPages, 4)
  kv.allocate('a', 17)
  t.equal(kv.pagesHeld('a'), 2)
  t.equal(kv.usedPositions, 17)
  t.equal(kv.usage(), 0.5)
  t.equal(kv.freePages, 2)
})

t.test('capacity is rounded down to whole pages', async (t) => {
  const kv = new KvAccounting({ capacity: 70, pageSize: 16 })
  t.equal(kv.totalPages, 4)
  t.equal(kv.canAllocate('a', 65), false)
  t.equal(kv.canAllocate('a', 64), true)
})

t.test('a sequence grows within the pages it holds before taking a new one', async (t) => {
  const kv = new KvAccounting({ capacity: 32, pageSize: 16 })
  kv.allocate('a', 10)
  kv.allocate('b', 16)
  t.equal(kv.freePages, 0)
  t.equal(kv.canAllocate('a', 16), true, 'a still has 6 positions in its page')
  t.equal(kv.canAllocate('a', 17), false)
  kv.allocate('a', 16)
  t.equal(kv.usedPositions, 32)
  t.equal(kv.usage(), 1)
})

t.test('allocation never shrinks what a sequence holds', async (t) => {
  const kv = new KvAccounting({ capacity: 64, pageSize: 16 })
  kv.allocate('a', 40)
  kv.allocate('a', 5)
  t.equal(kv.pagesHeld('a'), 3)
  t.equal(kv.usedPositions, 40)
})

t.test('allocating beyond capacity throws KV_OVER_CAPACITY and changes nothing', async (t) => {
  const kv = new KvAccounting({ capacity: 32, pageSize: 16 })
  kv.allocate('a', 20)
  t.throws(() => kv.allocate('b', 13), { name: 'KelixError', code: 'KV_OVER_CAPACITY' })
  t.equal(kv.pagesHeld('b'), 0)
  t.equal(kv.usedPositions, 20)
  t.same(kv.sequencesHolding(), ['a'])
})

t.test('free releases every page once and a second free is a no-op', async (t) => {
  const kv = new KvAccounting({ capacity: 64, pageSize: 16 })
  kv.allocate('a', 20)
  kv.allocate('b', 16)
  t.same(kv.sequencesHolding(), ['a', 'b'])
  t.equal(kv.free('a'), true)
  t.equal(kv.free('a'), false)
  t.equal(kv.free('never'), false)
  t.equal(kv.pagesHeld('a'), 0)
  t.equal(kv.usedPositions, 16)
  t.equal(kv.usage(), 0.25)
  t.same(kv.sequencesHolding(), ['b'])
})

t.test('an allocation of zero positions holds nothing', async (t) => {
  const kv = new KvAccounting({ capacity: 16, pageSize: 16 })
  kv.allocate('a', 0)
  t.same(kv.sequencesHolding(), [])
})

t.test('bad options and bad sizes throw INVALID_CONFIG naming the value', async (t) => {
  t.throws(() => new KvAccounting({ capacity: 64, pageSize: 0 }), {
    code: 'SCHEDULER_CONFIG_INVALID',
    message: /pageSize/,
  })
  t.throws(() => new KvAccounting({ capacity: 8, pageSize: 16 }), {
    code: 'SCHEDULER_CONFIG_INVALID',
    message: /capacity/,
  })
  const kv = new KvAccounting({ capacity: 64, pageSize: 16 })
  t.throws(() => kv.allocate('a', 1.5), KelixError)
  t.throws(() => kv.allocate('a', -1), { code: 'SCHEDULER_CONFIG_INVALID' })
})
