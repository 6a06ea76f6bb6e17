/** Deterministic test images, encoded with sharp. */
import sharp from 'sharp'

/** A w×h RGB image whose pixels are a smooth function of position and `seed`, as PNG bytes. */
export async function patternPng(width: number, height: number, seed = 0): Promise<Uint8Array> {
  const pixels = Buffer.alloc(width * height * 3)
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3
      pixels[i] = (x * 3 + seed * 40) & 255
      pixels[i + 1] = (y * 5 + seed * 90) & 255
      pixels[i + 2] = ((x ^ y) + seed * 17) & 255
    }
  }
  return new Uint8Array(
    await sharp(pixels, { raw: { width, height, channels: 3 } })
      .png()
      .toBuffer(),
  )
}
