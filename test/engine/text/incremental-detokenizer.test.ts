import t from 'tap'
import { IncrementalDetokenizer } from '../../../src/engine/text/incremental-detokenizer.js'
import { seededRandom, tinyText } from './fixtures/fixture.js'

const { tokenizer } = await tinyText()

/** A lone surrogate would mean a character was cut in half. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

t.test('a character whose bytes span several tokens is emitted once complete', async (t) => {
  const ids = tokenizer.encode('é 東京 😀')
  t.same(
    ids,
    [313, 32, 230, 157, 177, 228, 186, 172, 32, 240, 159, 152, 128],
    'each CJK and emoji byte is its own token',
  )
  const detokenizer = new IncrementalDetokenizer(tokenizer)
  const deltas = ids.map((id) => detokenizer.push(id))
  t.same(deltas, ['é', ' ', '', '', '東', '', '', '京', ' ', '', '', '', '😀'])
  t.equal(detokenizer.finish(), '')
  t.equal(deltas.join(''), tokenizer.decode(ids, { skipSpecialTokens: true }))
})

t.test('special tokens add no text, and bytes on both sides of one still join', async (t) => {
  const detokenizer = new IncrementalDetokenizer(tokenizer)
  t.same(
    [501, 0xc3, 502, 0xa9, 506].map((id) => detokenizer.push(id)),
    ['', '', '', 'é', ''],
  )
  t.equal(detokenizer.finish(), '')
  t.equal(tokenizer.decode([501, 0xc3, 502, 0xa9, 506], { skipSpecialTokens: true }), 'é')
})

t.test('finish turns an incomplete character into U+FFFD', async (t) => {
  const detokenizer = new IncrementalDetokenizer(tokenizer)
  t.equal(detokenizer.push([72, 105, 230, 157]), 'Hi')
  t.equal(detokenizer.finish(), '\uFFFD')
  t.equal(detokenizer.finish(), '', 'finish is idempotent')
  t.throws(() => detokenizer.push(72), { message: 'IncrementalDetokenizer: push after finish' })
})

t.test('a byte that cannot continue a character is replaced at once', async (t) => {
  const detokenizer = new IncrementalDetokenizer(tokenizer)
  t.same(
    [230, 72, 105].map((id) => detokenizer.push(id)),
    ['', '\uFFFDH', 'i'],
  )
})

t.test('random id sequences, pushed in random chunks, give exactly the decoded text', async (t) => {
  const random = seededRandom(2026)
  const pick = () => {
    const r = random()
    if (r < 0.6) return 128 + Math.floor(random() * 128) // continuation and lead bytes: many split characters
    if (r < 0.95) return Math.floor(random() * 509)
    return 600 + Math.floor(random() * 4000) // visual ids: no text
  }
  let checked = 0
  for (let n = 0; n < 500; n++) {
    const ids = Array.from({ length: Math.floor(random() * 40) }, pick)
    const detokenizer = new IncrementalDetokenizer(tokenizer)
    const deltas: string[] = []
    for (let i = 0; i < ids.length;) {
      const size = 1 + Math.floor(random() * 3)
      deltas.push(detokenizer.push(ids.slice(i, i + size)))
      i += size
    }
    deltas.push(detokenizer.finish())
    const expected = tokenizer.decode(ids, { skipSpecialTokens: true })
    if (deltas.join('') !== expected) t.fail(`ids ${JSON.stringify(ids)}`)
    if (deltas.some((d) => LONE_SURROGATE.test(d)))
      t.fail(`a delta splits a surrogate pair: ids ${JSON.stringify(ids)}`)
    checked++
  }
  t.equal(checked, 500)
})

t.test('valid text streamed token by token never shows a replacement character', async (t) => {
  const text = 'Café, naïve, résumé, 東京, Привет, 😀👍🏽 — done.'
  const ids = tokenizer.encode(text)
  const detokenizer = new IncrementalDetokenizer(tokenizer)
  const deltas = ids.map((id) => detokenizer.push(id))
  t.equal(
    deltas.some((d) => d.includes('\uFFFD') || LONE_SURROGATE.test(d)),
    false,
  )
  t.equal(deltas.join('') + detokenizer.finish(), text)
})
