/** Checks a graph's output before the sampler reads it. */
import type ort from 'onnxruntime-node'
import { KelixError } from '../../errors/kelix-error.js'

/** The data of a float32 output of the expected shape, or MODEL_GRAPH_MISMATCH naming the file. */
export function checkedFloat(
  tensor: ort.Tensor | undefined,
  name: string,
  dims: readonly number[],
  file: string,
): Float32Array {
  const mismatch = (detail: string) => new KelixError('MODEL_GRAPH_MISMATCH', detail, { file: file })
  if (tensor === undefined) throw mismatch(`the run returned no output "${name}"`)
  if (tensor.type !== 'float32') throw mismatch(`output ${name} has type ${tensor.type}, expected float32`)
  if (tensor.dims.length !== dims.length || tensor.dims.some((d, i) => d !== dims[i])) {
    throw mismatch(`output ${name} has shape [${tensor.dims.join(', ')}], expected [${dims.join(', ')}]`)
  }
  return tensor.data as Float32Array
}
