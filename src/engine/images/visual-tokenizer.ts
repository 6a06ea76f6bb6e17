/**
 * Runs visual_tokenizer.onnx on one image's patches and checks what comes back:
 * a graph that disagrees with config.json must fail here, not as wrong ids later.
 */
import ort from 'onnxruntime-node'
import { MODEL_FILES } from '../graph-signatures.js'
import type { KelixConfig } from '../model-config.js'
import { KelixError } from '../../errors/kelix-error.js'

/** One image as the LLM sees it: `rows × cols` positions, each with one code per sub-codebook. */
export interface VisualTokens {
  rows: number
  cols: number
  /** `rows · cols · num_codebooks` codes, position-major (row-major over positions), each in `[0, codebook_size)`. Read-only. */
  codes: Int32Array
}

/** What the engine needs of a session; an `ort.InferenceSession` satisfies it, and tests can wrap one. */
export interface VisualTokenizerSession {
  run(feeds: ort.InferenceSession.FeedsType): Promise<ort.InferenceSession.ReturnType>
}

/**
 * Tokenizes one image. `rows` and `cols` count LLM positions; the graph is fed
 * the patch grid `[rows · merge, cols · merge]`.
 *
 * @throws KelixError MODEL_GRAPH_MISMATCH when `codes` has the wrong type, shape or a value out of range
 */
export async function runVisualTokenizer(
  session: VisualTokenizerSession,
  config: KelixConfig,
  patches: Float32Array,
  rows: number,
  cols: number,
): Promise<VisualTokens> {
  const { patch_size: p, merge_size: m } = config.vision
  const gridRows = rows * m
  const gridCols = cols * m
  const patchValues = 3 * p * p
  if (patches.length !== gridRows * gridCols * patchValues) {
    throw new RangeError(
      `${patches.length} patch values do not fill a ${gridRows}×${gridCols} grid of ${patchValues}-value patches`,
    )
  }
  const feeds = {
    pixel_patches: new ort.Tensor('float32', patches, [gridRows * gridCols, patchValues]),
    grid_hw: new ort.Tensor('int64', BigInt64Array.from([BigInt(gridRows), BigInt(gridCols)]), [2]),
  }
  let outputs: ort.InferenceSession.ReturnType
  try {
    outputs = await session.run(feeds)
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err)
    throw new Error(
      `${MODEL_FILES.visualTokenizer} failed on pixel_patches float32 [${gridRows * gridCols}, ${patchValues}], grid_hw [${gridRows}, ${gridCols}]: ${message}`,
      { cause: err },
    )
  }
  return { rows, cols, codes: checkedCodes(outputs.codes, rows * cols, config) }
}

function checkedCodes(tensor: ort.Tensor | undefined, positions: number, config: KelixConfig): Int32Array {
  const { num_codebooks: books, codebook_size: size } = config.vocab
  const mismatch = (detail: string) =>
    new KelixError('MODEL_GRAPH_MISMATCH', detail, { file: MODEL_FILES.visualTokenizer })
  if (tensor === undefined) throw mismatch('the run returned no output "codes"')
  if (tensor.type !== 'int64') throw mismatch(`output codes has type ${tensor.type}, expected int64`)
  const dims = tensor.dims
  if (dims.length !== 2 || dims[0] !== positions || dims[1] !== books) {
    throw mismatch(`output codes has shape [${dims.join(', ')}], expected [${positions}, ${books}]`)
  }
  const data = tensor.data as BigInt64Array
  const codes = new Int32Array(data.length)
  for (let i = 0; i < data.length; i++) {
    const code = Number(data[i])
    if (!(code >= 0 && code < size))
      throw mismatch(`output codes[${Math.floor(i / books)}][${i % books}] is ${code}, outside [0, ${size})`)
    codes[i] = code
  }
  return codes
}
