import t from 'tap'
import { StopStringMatcher } from '../../../src/engine/text/stop-strings.js'
import { seededRandom } from './fixtures/fixture.js'

t.test('a stop string split across deltas is found and never emitted', async (t) => {
  const stops = new StopStringMatcher(['END'])
  t.same(stops.push('abcE'), { text: 'abc', stopped: false })
  t.same(stops.push('N'), { text: '', stopped: false })
  t.same(stops.push('Dxyz'), { text: '', stopped: true })
  t.same(stops.push('more'), { text: '', stopped: true }, 'nothing after a stop')
  t.equal(stops.flush(), '')
})

t.test('a partial match that fails is emitted, and an overlapping one still matches ("ab" in "aab")', async (t) => {
  const stops = new StopStringMatcher(['ab'])
  t.same(stops.push('a'), { text: '', stopped: false })
  t.same(stops.push('a'), { text: 'a', stopped: false })
  t.same(stops.push('b'), { text: '', stopped: true })
  t.same(new StopStringMatcher(['ab']).push('aab'), { text: 'a', stopped: true })
})

t.test('a stop string at the very start emits nothing', async (t) => {
  t.same(new StopStringMatcher(['STOP']).push('STOP and more'), { text: '', stopped: true })
})

t.test('without a stop string, flush returns the text held back', async (t) => {
  const stops = new StopStringMatcher(['###', 'zzz'])
  t.same(stops.push('a#'), { text: 'a', stopped: false })
  t.same(stops.push('b##'), { text: '#b', stopped: false })
  t.equal(stops.flush(), '##')
})

t.test('only the longest tail that could begin a stop string is held back', async (t) => {
  const stops = new StopStringMatcher(['hello world', 'low'])
  t.same(stops.push('say hello wor'), { text: 'say ', stopped: false })
  t.same(stops.push('k'), { text: 'hello work', stopped: false })
  t.same(stops.push('lo'), { text: '', stopped: false })
  t.same(stops.push('wer'), { text: '', stopped: true })
})

t.test('the stop string complete first wins, however the text is cut', async (t) => {
  t.same(new StopStringMatcher(['abcd', 'bc']).push('xabcd'), { text: 'xa', stopped: true })
  const cut = new StopStringMatcher(['abcd', 'bc'])
  t.same(cut.push('xab'), { text: 'x', stopped: false })
  t.same(cut.push('cd'), { text: 'a', stopped: true })
  t.same(
    new StopStringMatcher(['bc', 'abc']).push('xabc'),
    { text: 'x', stopped: true },
    'completing together, the one starting first',
  )
})

t.test('stop strings of any length and with non-ASCII characters match', async (t) => {
  t.same(new StopStringMatcher(['😀']).push('hi 😀 there'), { text: 'hi ', stopped: true })
  const long = 'x'.repeat(300) + 'y'
  const stops = new StopStringMatcher([long])
  t.same(stops.push('x'.repeat(500)), { text: 'x'.repeat(200), stopped: false })
  t.same(stops.push('y!'), { text: '', stopped: true })
})

t.test('empty stop strings are ignored', async (t) => {
  const stops = new StopStringMatcher(['', 'q'])
  t.same(stops.push('abc'), { text: 'abc', stopped: false })
  t.same(stops.push('xqy'), { text: 'x', stopped: true })
})

t.test('random text cut into random deltas gives the same result as the whole text', async (t) => {
  const random = seededRandom(11)
  const stopSets = [['aba'], ['bb', 'abab'], ['aaaa', 'ba', 'bab', 'abba'], ['b'.repeat(5)]]
  let checked = 0
  for (let n = 0; n < 400; n++) {
    const stops = stopSets[n % stopSets.length] ?? []
    const text = Array.from({ length: Math.floor(random() * 30) }, () => (random() < 0.5 ? 'a' : 'b')).join('')
    // Reference: the text before the stop string that ends first (starting first among those ending together).
    const ends = stops
      .map((s) => ({ s, at: text.indexOf(s) }))
      .filter((m) => m.at >= 0)
      .map((m) => ({ end: m.at + m.s.length, start: m.at }))
    ends.sort((x, y) => x.end - y.end || x.start - y.start)
    const expected =
      ends[0] === undefined ? { text, stopped: false } : { text: text.slice(0, ends[0].start), stopped: true }

    const matcher = new StopStringMatcher(stops)
    let emitted = ''
    let stopped = false
    for (let i = 0; i < text.length && !stopped;) {
      const size = 1 + Math.floor(random() * 4)
      const result = matcher.push(text.slice(i, i + size))
      emitted += result.text
      stopped = result.stopped
      i += size
    }
    if (!stopped) emitted += matcher.flush()
    if (emitted !== expected.text || stopped !== expected.stopped)
      t.fail(`${JSON.stringify(stops)} on ${text}: got ${emitted} (${stopped})`)
    checked++
  }
  t.equal(checked, 400)
})
