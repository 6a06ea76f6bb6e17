import sharp from 'sharp'
import t from 'tap'
import { ImageTokenizer } from '../../../src/engine/images/image-tokenizer.js'
import type { VisualTokenizerSession } from '../../../src/engine/images/visual-tokenizer.js'
import { loadModel, type KelixModel } from '../../../src/engine/model.js'
import type { ImageInput } from '../../../src/engine/types.js'
import { tinyModelDir } from '../../helpers/tiny-model.js'
import { coordinateRgb, noiseRgb, png } from './fixtures/images.js'

const model: KelixModel = await loadModel(await tinyModelDir())
t.teardown(() => model.dispose())
const { num_codebooks: books, codebook_size: codebookSize } = model.config.vocab

/** The tiny model's visual tokenizer, counting its runs. */
function countingSession() {
  const counter = { runs: 0 }
  const session: VisualTokenizerSession = {
    run: (feeds) => {
      counter.runs++
      return model.visualTokenizer.run(feeds)
    },
  }
  return { session, counter }
}

const tokenizer = (cacheEntries = 16) => {
  const { session, counter } = countingSession()
  return { images: new ImageTokenizer(session, model.config, { maxPixels: 4096 * 4096, cacheEntries }), counter }
}

const image = async (
  width: number,
  height: number,
  seed: number,
  detail: ImageInput['detail'] = 'auto',
): Promise<ImageInput> => ({
  bytes: await png(noiseRgb(width, height, seed), width, height),
  detail,
})

t.test('a repeated image comes from the cache with identical codes, without running the session', async (t) => {
  const { images, counter } = tokenizer()
  const input = await image(84, 56, 1)
  const first = await images.tokenize(input)
  const second = await images.tokenize({ bytes: Uint8Array.from(input.bytes), detail: 'high' })
  t.same(Array.from(second.codes), Array.from(first.codes))
  t.equal(counter.runs, 1)
  t.same(images.stats(), { hits: 1, misses: 1, size: 1 })
})

t.test('identical concurrent requests share one run', async (t) => {
  const { images, counter } = tokenizer()
  const input = await image(112, 112, 2)
  const results = await Promise.all([images.tokenize(input), images.tokenize(input), images.tokenize(input)])
  t.equal(counter.runs, 1)
  t.ok(results.every((r) => r === results[0]))
})

t.test('identical images give identical codes and different images different codes, without a cache', async (t) => {
  const { images, counter } = tokenizer(0)
  const a = await images.tokenize(await image(112, 84, 3))
  const again = await images.tokenize(await image(112, 84, 3))
  const b = await images.tokenize(await image(112, 84, 4))
  t.equal(counter.runs, 3)
  t.same(Array.from(again.codes), Array.from(a.codes))
  t.not(Buffer.compare(Buffer.from(a.codes.buffer), Buffer.from(b.codes.buffer)), 0)
})

t.test('an image takes (H/28)·(W/28) positions with one code per sub-codebook, every code in range', async (t) => {
  const { images } = tokenizer()
  const sizes = [
    [56, 56],
    [84, 56],
    [224, 112],
    [112, 224],
    [448, 448],
  ] as const
  for (const [width, height] of sizes) {
    const tokens = await images.tokenize(await image(width, height, width + height))
    t.same(
      [tokens.rows, tokens.cols, tokens.codes.length],
      [height / 28, width / 28, (height / 28) * (width / 28) * books],
      `${width}×${height}`,
    )
    t.equal(
      tokens.codes.filter((c) => c < 0 || c >= codebookSize).length,
      0,
      `${width}×${height} codes in [0, ${codebookSize})`,
    )
  }
})

t.test('detail low caps the positions and is cached apart from detail high', async (t) => {
  const { images, counter } = tokenizer()
  const high = await image(448, 448, 5, 'high')
  const low = await images.tokenize({ ...high, detail: 'low' })
  t.same([low.rows, low.cols], [8, 8])
  t.same([(await images.tokenize(high)).rows, counter.runs], [16, 2])
})

t.test('an EXIF-rotated PNG gives exactly the codes of the upright image', async (t) => {
  const { images } = tokenizer(0)
  const upright = await png(coordinateRgb(84, 56), 84, 56)
  const stored = await sharp(upright).rotate(270).png().toBuffer()
  const rotated = await sharp(stored).withMetadata({ orientation: 6 }).png().toBuffer()
  const a = await images.tokenize({ bytes: upright, detail: 'auto' })
  const b = await images.tokenize({ bytes: rotated, detail: 'auto' })
  t.same([b.rows, b.cols], [2, 3])
  t.same(Array.from(b.codes), Array.from(a.codes))
  const unrotated = await images.tokenize({ bytes: stored, detail: 'auto' })
  t.same([unrotated.rows, unrotated.cols], [3, 2], 'without the tag the same pixels lie sideways')
})

t.test('bad images fail with their code and are not cached', async (t) => {
  const { images, counter } = tokenizer()
  await t.rejects(images.tokenize({ bytes: new Uint8Array(0), detail: 'auto' }), { code: 'invalid_image' })
  await t.rejects(images.tokenize({ bytes: new TextEncoder().encode('not an image'), detail: 'auto' }), {
    code: 'invalid_image',
  })
  t.same([counter.runs, images.stats().size], [0, 0])
})

t.test('a maxPixels that is not a positive integer is a RangeError naming it', async (t) => {
  t.throws(() => new ImageTokenizer(model.visualTokenizer, model.config, { maxPixels: 0, cacheEntries: 1 }), {
    name: 'RangeError',
    message: /maxPixels/,
  })
})
