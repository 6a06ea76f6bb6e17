import t from 'tap'
import { imageCacheKey, VisualCache } from '../../../src/engine/images/visual-cache.js'

const counters = (cache: VisualCache<unknown>) => ({ hits: cache.hits, misses: cache.misses, size: cache.size })

/** A computation the test resolves or rejects by hand. */
function deferred<V>() {
  let resolve!: (value: V) => void
  let reject!: (err: Error) => void
  const promise = new Promise<V>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

t.test('a second lookup of a key is a hit and does not compute again', async (t) => {
  const cache = new VisualCache<string>({ maxEntries: 4 })
  let computed = 0
  const compute = async () => `value ${++computed}`
  t.equal(await cache.getOrCompute('a', compute), 'value 1')
  t.equal(await cache.getOrCompute('a', compute), 'value 1')
  t.equal(computed, 1)
  t.same(counters(cache), { hits: 1, misses: 1, size: 1 })
})

t.test('concurrent misses for one key share one computation', async (t) => {
  const cache = new VisualCache<string>({ maxEntries: 4 })
  const pending = deferred<string>()
  let computed = 0
  const compute = () => {
    computed++
    return pending.promise
  }
  const first = cache.getOrCompute('a', compute)
  const second = cache.getOrCompute('a', compute)
  t.same(counters(cache), { hits: 1, misses: 1, size: 0 })
  pending.resolve('shared')
  t.same(await Promise.all([first, second]), ['shared', 'shared'])
  t.equal(computed, 1)
  t.same(counters(cache), { hits: 1, misses: 1, size: 1 })
})

t.test('a failed computation rejects every waiter and is not cached', async (t) => {
  const cache = new VisualCache<string>({ maxEntries: 4 })
  const pending = deferred<string>()
  const first = cache.getOrCompute('a', () => pending.promise)
  const second = cache.getOrCompute('a', () => Promise.resolve('never used'))
  pending.reject(new Error('boom'))
  await t.rejects(first, { message: 'boom' })
  await t.rejects(second, { message: 'boom' })
  t.same(counters(cache), { hits: 1, misses: 1, size: 0 })
  t.equal(await cache.getOrCompute('a', async () => 'second try'), 'second try')
  t.same(counters(cache), { hits: 1, misses: 2, size: 1 })
})

t.test('a computation that throws synchronously is a rejection, not a throw', async (t) => {
  const cache = new VisualCache<string>({ maxEntries: 4 })
  await t.rejects(
    cache.getOrCompute('a', () => {
      throw new Error('sync')
    }),
    { message: 'sync' },
  )
  t.equal(cache.size, 0)
})

t.test('the least recently used entry is evicted first, and a hit refreshes an entry', async (t) => {
  const cache = new VisualCache<string>({ maxEntries: 2 })
  const computed: string[] = []
  const get = (key: string) =>
    cache.getOrCompute(key, async () => {
      computed.push(key)
      return key
    })
  await get('a')
  await get('b')
  await get('a')
  await get('c')
  t.equal(cache.size, 2)
  await get('a')
  await get('b')
  t.same(computed, ['a', 'b', 'c', 'b'], 'b was evicted by c; a stayed because it was used after b')
  t.same(counters(cache), { hits: 2, misses: 4, size: 2 })
})

t.test('maxEntries 0 keeps nothing but still shares concurrent misses', async (t) => {
  const cache = new VisualCache<number>({ maxEntries: 0 })
  let computed = 0
  const compute = async () => ++computed
  t.same(await Promise.all([cache.getOrCompute('a', compute), cache.getOrCompute('a', compute)]), [1, 1])
  t.equal(await cache.getOrCompute('a', compute), 2)
  t.same(counters(cache), { hits: 1, misses: 2, size: 0 })
})

t.test('a maxEntries that is not a non-negative integer is a RangeError naming it', async (t) => {
  t.throws(() => new VisualCache({ maxEntries: -1 }), { name: 'RangeError', message: /maxEntries/ })
  t.throws(() => new VisualCache({ maxEntries: 1.5 }), RangeError)
})

t.test('the key is the sha256 of the bytes plus the detail level, with auto and high shared', async (t) => {
  const bytes = new TextEncoder().encode('abc')
  t.equal(imageCacheKey(bytes, 'high'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad:high')
  t.equal(imageCacheKey(bytes, 'auto'), imageCacheKey(bytes, 'high'))
  t.equal(imageCacheKey(bytes, 'low'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad:low')
  t.not(imageCacheKey(new TextEncoder().encode('abd'), 'high'), imageCacheKey(bytes, 'high'))
})
