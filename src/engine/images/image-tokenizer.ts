/**
 * Image bytes → visual tokens, once per distinct image: preprocessing and the
 * visual tokenizer behind a content-keyed cache.
 */
import type { KelixConfig } from '../model-config.js'
import type { ImageInput } from '../types.js'
import { preprocessImage } from './preprocess.js'
import { imageCacheKey, VisualCache } from './visual-cache.js'
import { runVisualTokenizer, type VisualTokenizerSession, type VisualTokens } from './visual-tokenizer.js'

export interface ImageTokenizerOptions {
  /** Most pixels a source image may have (width × height of its first frame). */
  maxPixels: number
  /** Tokenized images kept in the cache (least recently used evicted); 0 disables caching. */
  cacheEntries: number
}

/** How one `tokenize` call went: on a cache hit both times are 0. */
export interface ImageTiming {
  preprocessMs: number
  tokenizeMs: number
  cacheHit: boolean
}

export interface ImageCacheStats {
  hits: number
  misses: number
  size: number
}

export class ImageTokenizer {
  private readonly cache: VisualCache<VisualTokens>

  constructor(
    private readonly session: VisualTokenizerSession,
    private readonly config: KelixConfig,
    private readonly options: ImageTokenizerOptions,
  ) {
    if (!(Number.isInteger(options.maxPixels) && options.maxPixels > 0)) {
      throw new RangeError(`maxPixels must be a positive integer, got ${options.maxPixels}`)
    }
    this.cache = new VisualCache({ maxEntries: options.cacheEntries })
  }

  /**
   * The visual tokens of one image; identical bytes at the same detail level
   * are tokenized once. The result is shared between callers: do not mutate it.
   *
   * @throws KelixError with an IMAGE_* code for bad input, MODEL_GRAPH_MISMATCH for a bad graph output
   */
  async tokenize(image: ImageInput, onTiming?: (timing: ImageTiming) => void): Promise<VisualTokens> {
    const timing: ImageTiming = { preprocessMs: 0, tokenizeMs: 0, cacheHit: true }
    const tokens = await this.cache.getOrCompute(imageCacheKey(image.bytes, image.detail), async () => {
      timing.cacheHit = false
      const start = performance.now()
      const { patches, rows, cols } = await preprocessImage(image.bytes, this.config, image.detail, {
        maxPixels: this.options.maxPixels,
      })
      const preprocessed = performance.now()
      const result = await runVisualTokenizer(this.session, this.config, patches, rows, cols)
      timing.preprocessMs = preprocessed - start
      timing.tokenizeMs = performance.now() - preprocessed
      return result
    })
    onTiming?.(timing)
    return tokens
  }

  /** Cache counters, for metrics. */
  stats(): ImageCacheStats {
    return { hits: this.cache.hits, misses: this.cache.misses, size: this.cache.size }
  }
}
