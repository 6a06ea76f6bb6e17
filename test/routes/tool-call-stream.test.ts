/**
 * Reading a constrained tool-call answer as it streams: the header of each
 * call once its name is complete, then exactly its argument text, however the
 * text is cut into deltas; braces, quotes and escapes inside strings do not
 * end anything.
 */
import t from 'tap'
import { ToolCallStream, type ToolCallDelta } from '../../src/routes/chat/tool-call-stream.js'

const ONE = '{"name":"get_weather","arguments":{"city":"Pa}r\\"is{","days":[1,{"x":"]"}]}}'
const MANY = '[{"name":"a","arguments":{}},{"name":"b\\"q","arguments":{"k":"v}"}}]'

/** The stream fed in pieces of `size` characters: every delta, and the calls it assembled. */
function feed(
  text: string,
  parallel: boolean,
  size: number,
): { deltas: ToolCallDelta[]; calls: ToolCallStream['calls'] } {
  const stream = new ToolCallStream(parallel)
  const deltas: ToolCallDelta[] = []
  for (let i = 0; i < text.length; i += size) deltas.push(...stream.push(text.slice(i, i + size)))
  return { deltas, calls: stream.calls }
}

/** Deltas joined by index, as the SDKs join them. */
function joined(deltas: ToolCallDelta[]): Array<{ name: string; arguments: string }> {
  const out: Array<{ name: string; arguments: string }> = []
  for (const d of deltas) {
    if ('id' in d) out[d.index] = { name: d.function.name, arguments: '' }
    ;(out[d.index] as { arguments: string }).arguments += d.function.arguments
  }
  return out
}

t.test('one call: the header, then the arguments exactly, in any cut', async (t) => {
  for (const size of [1, 2, 5, 1000]) {
    const { deltas, calls } = feed(ONE, false, size)
    t.match(deltas[0], {
      index: 0,
      id: /^call_[0-9a-f]{24}$/,
      type: 'function',
      function: { name: 'get_weather', arguments: '' },
    })
    t.same(
      joined(deltas),
      [{ name: 'get_weather', arguments: '{"city":"Pa}r\\"is{","days":[1,{"x":"]"}]}' }],
      `pieces of ${size}`,
    )
    t.same(
      calls.map((c) => c.arguments),
      [JSON.stringify(JSON.parse(ONE).arguments)],
    )
  }
})

t.test('parallel calls: each its header and its own arguments, names unescaped', async (t) => {
  for (const size of [1, 3, 1000]) {
    const { deltas } = feed(MANY, true, size)
    t.same(
      joined(deltas),
      [
        { name: 'a', arguments: '{}' },
        { name: 'b"q', arguments: '{"k":"v}"}' },
      ],
      `pieces of ${size}`,
    )
    t.same(
      deltas.filter((d) => 'id' in d).map((d) => d.index),
      [0, 1],
      'one header per call, in order',
    )
  }
})

t.test('a cut-off answer gives what was written so far', async (t) => {
  const { deltas, calls } = feed(ONE.slice(0, 40), false, 7)
  t.same(joined(deltas), [{ name: 'get_weather', arguments: ONE.slice(34, 40) }])
  t.equal(calls.length, 1)
})
