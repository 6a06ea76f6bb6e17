import { Tokenizer } from '@huggingface/tokenizers'
import t from 'tap'
import { TextTokenizer } from '../../../src/engine/text/tokenizer.js'
import { seededRandom, tinyText } from './fixtures/fixture.js'

const { tokenizer, config, data } = await tinyText()
/** The library used the ordinary way, with special-token matching: the reference for trusted text. */
const library = new Tokenizer(data.tokenizerJson, data.tokenizerConfig)
const libraryEncode = (text: string): number[] => library.encode(text, { add_special_tokens: false }).ids

t.test(
  'encode turns special-token strings in template text into their ids, as the tokenizer library does',
  async (t) => {
    t.same(
      tokenizer.encode('<|im_start|>user\nHi é 東京 😀<|im_end|>'),
      [501, 117, 115, 260, 10, 72, 105, 32, 313, 32, 230, 157, 177, 228, 186, 172, 32, 240, 159, 152, 128, 502],
    )
    for (const text of [
      '<|vision_start|><|image_pad|><|vision_end|>',
      'a<eob>b<|endoftext|>',
      '<|im_end|>\n<|im_start|>assistant\n',
      'The cat sat. ',
      '',
    ]) {
      t.same(tokenizer.encode(text), libraryEncode(text), JSON.stringify(text))
    }
  },
)

t.test('encodeOrdinary keeps special-token text as ordinary bytes', async (t) => {
  const ids = tokenizer.encodeOrdinary('<|im_start|>user')
  t.same(ids, [60, 124, 105, 109, 95, 115, 116, 418, 124, 62, 117, 115, 260])
  t.equal(tokenizer.decode(ids), '<|im_start|>user')
  t.same(
    tokenizer.encodeOrdinary('<eob><|image_pad|>').filter((id) => id >= 500),
    [],
  )
  t.same(tokenizer.encodeOrdinary('Hi é 東京'), libraryEncode('Hi é 東京'))
})

t.test('splitSpecial gives special ids and the text between them', async (t) => {
  t.same(tokenizer.splitSpecial('<|im_start|>user\nhi<|im_end|>'), [501, 'user\nhi', 502])
  t.same(tokenizer.splitSpecial('no specials'), ['no specials'])
})

t.test('tokenBytes gives the raw bytes a token stands for', async (t) => {
  t.same([...tokenizer.tokenBytes(313)], [0xc3, 0xa9])
  t.same([...tokenizer.tokenBytes(230)], [0xe6])
  t.same([...tokenizer.tokenBytes(32)], [0x20])
  t.same([...tokenizer.tokenBytes(501)], [...new TextEncoder().encode('<|im_start|>')])
  t.same([...tokenizer.tokenBytes(3000)], [], 'a visual id has no text bytes')
  const ids = tokenizer.encode('Café, naïve, 東京 😀')
  const bytes = ids.flatMap((id) => [...tokenizer.tokenBytes(id)])
  t.same(bytes, [...new TextEncoder().encode('Café, naïve, 東京 😀')])
})

t.test('tokenBytes returns a copy the caller may change', async (t) => {
  tokenizer.tokenBytes(313)[0] = 0
  t.same([...tokenizer.tokenBytes(313)], [0xc3, 0xa9])
})

t.test('tokenText and tokenKind describe a single token', async (t) => {
  t.equal(tokenizer.tokenText(313), 'é')
  t.equal(tokenizer.tokenText(230), '\uFFFD')
  t.equal(tokenizer.tokenText(501), '<|im_start|>')
  t.equal(tokenizer.tokenText(3000), '')
  t.same(
    [313, 500, 502, 3000, -1].map((id) => tokenizer.tokenKind(id)),
    ['text', 'special', 'special', 'unknown', 'unknown'],
  )
  t.equal(tokenizer.isSpecial(506), true)
  t.equal(tokenizer.isSpecial(313), false)
})

t.test('decode agrees with the tokenizer library on random id sequences', async (t) => {
  const random = seededRandom(7)
  for (let n = 0; n < 300; n++) {
    const ids = Array.from({ length: 1 + Math.floor(random() * 24) }, () => Math.floor(random() * 509))
    for (const skip of [true, false]) {
      const expected = library.decode(ids, { skip_special_tokens: skip, clean_up_tokenization_spaces: false })
      if (tokenizer.decode(ids, { skipSpecialTokens: skip }) !== expected)
        t.fail(`decode(${JSON.stringify(ids)}, skip ${skip})`)
    }
  }
  t.equal(tokenizer.decode([]), '')
  t.equal(tokenizer.decode([501, 72, 105, 502], { skipSpecialTokens: true }), 'Hi')
  t.equal(tokenizer.decode([501, 72, 105, 502]), '<|im_start|>Hi<|im_end|>')
})

t.test('a tokenizer that is not byte-level is refused with MODEL_TOKENIZER_MISMATCH', async (t) => {
  const tokenizerJson = { ...data.tokenizerJson, decoder: { type: 'Metaspace', replacement: '▁' } }
  t.throws(() => new TextTokenizer({ ...data, tokenizerJson }, config), {
    name: 'KelixError',
    code: 'MODEL_TOKENIZER_MISMATCH',
  })
})

t.test('a token config.json names is special even when tokenizer.json does not mark it', async (t) => {
  const added = (data.tokenizerJson.added_tokens as Array<{ id: number }>).map((a) =>
    a.id === 506 ? { ...a, special: false } : a,
  )
  const relaxed = new TextTokenizer({ ...data, tokenizerJson: { ...data.tokenizerJson, added_tokens: added } }, config)
  t.equal(relaxed.isSpecial(506), true)
  t.same(relaxed.encodeOrdinary('<eob>'), [60, 101, 111, 98, 62])
})
