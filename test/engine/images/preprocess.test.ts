import sharp from 'sharp'
import t from 'tap'
import { TINY_CONFIG } from '../../../src/builder/tiny.js'
import { KelixError } from '../../../src/errors/kelix-error.js'
import { toPatches } from '../../../src/engine/images/patches.js'
import { preprocessImage } from '../../../src/engine/images/preprocess.js'
import { coordinateRgb, noiseRgb, normalised, png, rawImage, withClaimedSize } from './fixtures/images.js'

const config = TINY_CONFIG
const vision = config.vision
const limits = { maxPixels: 4096 * 4096 }
const W = 84
const H = 56
const preprocess = (bytes: Uint8Array, maxPixels = limits.maxPixels) =>
  preprocessImage(bytes, config, 'auto', { maxPixels })

/** What sharp itself decodes from `bytes`, cut into patches: the reference for lossy formats. */
async function decodedPatches(bytes: Uint8Array, width: number, height: number) {
  const data = await sharp(bytes).removeAlpha().raw().toBuffer()
  return toPatches(data, width, height, vision)
}

t.test('an image already in whole positions is not resampled: patches equal the exact pixels', async (t) => {
  const rgb = coordinateRgb(W, H)
  const image = await preprocess(await png(rgb, W, H))
  t.same(
    { rows: image.rows, cols: image.cols, sourceWidth: image.sourceWidth, sourceHeight: image.sourceHeight },
    { rows: 2, cols: 3, sourceWidth: W, sourceHeight: H },
  )
  t.same(image.patches, toPatches(rgb, W, H, vision))
  // Pixel (x 19, y 17) sits in patch row 1, col 1 at (3, 5); its G value is 4 × 17.
  t.equal(image.patches[(1 * 6 + 1) * 588 + 196 + 3 * 14 + 5], normalised(68, 1, vision))
})

t.test('PNG, JPEG, WEBP and GIF all decode to the planned grid', async (t) => {
  const rgb = coordinateRgb(W, H)
  const encoded = {
    png: await rawImage(rgb, W, H).png().toBuffer(),
    jpeg: await rawImage(rgb, W, H).jpeg({ quality: 95 }).toBuffer(),
    webp: await rawImage(rgb, W, H).webp({ lossless: true }).toBuffer(),
    gif: await rawImage(rgb, W, H).gif().toBuffer(),
  }
  for (const [format, bytes] of Object.entries(encoded)) {
    const image = await preprocess(bytes)
    t.same(
      [image.rows, image.cols, image.sourceWidth, image.sourceHeight, image.patches.length],
      [2, 3, W, H, 24 * 588],
      `${format} grid`,
    )
    t.same(image.patches, await decodedPatches(bytes, W, H), `${format} patches are sharp's decode, cut and normalised`)
  }
  t.same((await preprocess(encoded.webp)).patches, toPatches(rgb, W, H, vision), 'lossless WEBP is exact')
})

t.test('an animated GIF gives its first frame only', async (t) => {
  const frame = (r: number, b: number) =>
    Uint8Array.from({ length: 56 * 56 * 3 }, (_, i) => (i % 3 === 0 ? r : i % 3 === 2 ? b : 0))
  const frames = new Uint8Array([...frame(255, 0), ...frame(0, 255)])
  const twoPages = await sharp(frames, { raw: { width: 56, height: 112, channels: 3, pageHeight: 56 } })
    .gif()
    .toBuffer()
  t.equal((await sharp(twoPages).metadata()).pages, 2)
  const image = await preprocess(twoPages)
  t.same([image.rows, image.cols, image.sourceWidth, image.sourceHeight], [2, 2, 56, 56])
  const values = (c: number) =>
    new Set(
      Array.from({ length: 16 }, (_, p) => image.patches.subarray(p * 588 + c * 196, p * 588 + (c + 1) * 196)).flatMap(
        (s) => [...s],
      ),
    )
  t.same([[...values(0)], [...values(1)], [...values(2)]], [[1], [-1], [-1]], 'red everywhere, no blue from frame 2')
})

t.test('transparency is flattened onto white: a fully transparent pixel normalises to exactly 1.0', async (t) => {
  // Left half fully transparent black, right half opaque black.
  const rgba = Uint8Array.from({ length: 56 * 56 * 4 }, (_, i) =>
    i % 4 === 3 && Math.floor(i / 4) % 56 >= 28 ? 255 : 0,
  )
  const image = await preprocess(await png(rgba, 56, 56, 4))
  const patchValues = (row: number, col: number) =>
    new Set(image.patches.subarray((row * 4 + col) * 588, (row * 4 + col + 1) * 588))
  for (const row of [0, 1, 2, 3]) {
    t.same([...patchValues(row, 0)], [1], `row ${row}, transparent column 0`)
    t.same([...patchValues(row, 1)], [1], `row ${row}, transparent column 1`)
    t.same([...patchValues(row, 2)], [-1], `row ${row}, opaque column 2`)
    t.same([...patchValues(row, 3)], [-1], `row ${row}, opaque column 3`)
  }
})

t.test('an EXIF-rotated PNG gives exactly the patches of the upright image', async (t) => {
  const upright = await png(coordinateRgb(W, H), W, H)
  const expected = await preprocess(upright)
  // Orientation n displays the stored pixels upright once turned; store them turned back.
  const stored = { 3: 180, 6: 270, 8: 90 } as const
  for (const [orientation, angle] of Object.entries(stored)) {
    const turned = await sharp(await sharp(upright).rotate(angle).png().toBuffer())
      .withMetadata({ orientation: Number(orientation) })
      .png()
      .toBuffer()
    t.equal((await sharp(turned).metadata()).orientation, Number(orientation), `orientation ${orientation} is stored`)
    t.not(
      Buffer.compare(await sharp(turned).raw().toBuffer(), await sharp(upright).raw().toBuffer()),
      0,
      `orientation ${orientation} stores other pixels`,
    )
    const image = await preprocess(turned)
    t.same(
      [image.rows, image.cols, image.sourceWidth, image.sourceHeight],
      [2, 3, W, H],
      `orientation ${orientation} size`,
    )
    t.same(image.patches, expected.patches, `orientation ${orientation} pixels`)
  }
})

t.test('an EXIF-rotated JPEG is planned by its displayed size', async (t) => {
  const jpeg = await rawImage(coordinateRgb(H, W), H, W).withMetadata({ orientation: 6 }).jpeg().toBuffer()
  const image = await preprocess(jpeg)
  t.same([image.rows, image.cols, image.sourceWidth, image.sourceHeight], [2, 3, W, H])
  t.equal((await sharp(jpeg).metadata()).width, H, 'stored sideways')
})

t.test('a larger image is resized to the plan', async (t) => {
  const image = await preprocessImage(await png(noiseRgb(1000, 700, 7), 1000, 700), config, 'high', limits)
  t.same(
    [image.rows, image.cols, image.patches.length, image.sourceWidth, image.sourceHeight],
    [13, 19, 13 * 19 * 4 * 588, 1000, 700],
  )
  const low = await preprocessImage(await png(noiseRgb(1000, 700, 7), 1000, 700), config, 'low', limits)
  t.same([low.rows, low.cols], [6, 9])
})

t.test('zero bytes are invalid_image', async (t) => {
  await t.rejects(preprocess(new Uint8Array(0)), { name: 'KelixError', code: 'invalid_image' })
})

t.test('text, SVG and TIFF are invalid_image', async (t) => {
  const text = new TextEncoder().encode('hello, this is not an image\n')
  const svg = new TextEncoder().encode('<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"/>')
  const tiff = await rawImage(coordinateRgb(28, 28), 28, 28).tiff().toBuffer()
  t.equal((await sharp(tiff).metadata()).format, 'tiff')
  for (const bytes of [text, svg, tiff]) await t.rejects(preprocess(bytes), { code: 'invalid_image' })
  await t.rejects(preprocess(text), { message: /68 65 6c 6c 6f 2c 20 74/ }, 'the message shows the first bytes')
})

t.test('truncated PNG, JPEG, WEBP and GIF are invalid_image', async (t) => {
  const rgb = noiseRgb(112, 112, 3)
  const encoded = [
    await rawImage(rgb, 112, 112).png().toBuffer(),
    await rawImage(rgb, 112, 112).jpeg().toBuffer(),
    await rawImage(rgb, 112, 112).webp().toBuffer(),
    await rawImage(rgb, 112, 112).gif().toBuffer(),
  ]
  for (const bytes of encoded) {
    await t.rejects(preprocess(bytes.subarray(0, Math.floor(bytes.length / 2))), { code: 'invalid_image' })
    await t.rejects(preprocess(bytes.subarray(0, 12)), { code: 'invalid_image' }, 'magic bytes only')
  }
})

t.test('a PNG with corrupted data is invalid_image', async (t) => {
  const bytes = Buffer.from(await png(noiseRgb(112, 112, 5), 112, 112))
  for (let i = 100; i < bytes.length - 100; i += 7) bytes[i] = (bytes[i] as number) ^ 0x5a
  await t.rejects(preprocess(bytes), { code: 'invalid_image' })
})

t.test(
  'a PNG header claiming 100000×100000 is image_too_large before any decoding, naming size and limit',
  async (t) => {
    const bomb = withClaimedSize(await png(coordinateRgb(28, 28), 28, 28), 100000, 100000)
    await t.rejects(preprocess(bomb), {
      code: 'image_too_large',
      message: `the image is 100000×100000 = 10000000000 pixels, more than the limit of ${limits.maxPixels}`,
    })
  },
)

t.test('a real image over the pixel limit is image_too_large', async (t) => {
  await t.rejects(preprocess(await png(coordinateRgb(W, H), W, H), 4000), {
    code: 'image_too_large',
    message: 'the image is 84×56 = 4704 pixels, more than the limit of 4000',
  })
  const image = await preprocess(await png(coordinateRgb(W, H), W, H), W * H)
  t.equal(image.rows * image.cols, 6, 'exactly at the limit is accepted')
})

t.test(
  'randomly damaged images either decode or fail with invalid_image or image_too_large, never anything else',
  async (t) => {
    const sources = [
      await png(noiseRgb(56, 56, 11), 56, 56),
      await rawImage(noiseRgb(56, 56, 12), 56, 56)
        .jpeg()
        .toBuffer(),
      await rawImage(noiseRgb(56, 56, 13), 56, 56)
        .webp()
        .toBuffer(),
    ]
    let seed = 0x9e3779b9
    const next = () => (seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32
    const outcomes = new Map<string, number>()
    for (const source of sources) {
      for (let variant = 0; variant < 12; variant++) {
        const bytes = Buffer.from(source)
        for (let k = 0; k < 4; k++) bytes[8 + Math.floor(next() * (bytes.length - 8))] = Math.floor(next() * 256)
        const outcome = await preprocess(bytes).then(
          () => 'decoded',
          (err: unknown) =>
            err instanceof KelixError && (err.code === 'invalid_image' || err.code === 'image_too_large')
              ? err.code
              : `unexpected ${String(err)}`,
        )
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
      }
    }
    t.same(
      [...outcomes.keys()].filter((k) => k.startsWith('unexpected')),
      [],
    )
  },
)
