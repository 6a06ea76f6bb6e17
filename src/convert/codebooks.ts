/**
 * Kelix-Tok's codebooks, precomputed once instead of at every call as the
 * reference does: sub-codebook k = q_norm_k(embedding_proj_k(rows of k)),
 * from quantizer k's own frozen table (rows [k·S, (k+1)·S), S codes per
 * sub-codebook), a Linear and a learned LayerNorm (eps 1e-5).
 *
 * The product is 8 × 8192 × 4096 × 128 multiply-adds for the real model, so
 * it runs as a small ONNX graph in ONNX Runtime (its tables are inputs, one
 * sub-codebook per run) rather than in JavaScript.
 */
import ort from 'onnxruntime-node'
import type { Architecture } from '../builder/architecture.js'
import { float, GraphBuilder, int } from '../builder/graph.js'
import { collect, type TensorData } from '../builder/tensor-data.js'
import type { CheckpointWeights } from '../builder/weights.js'

const OPSET = 17
const QUANTIZER = 'visual_tokenizer.quantizer'
/** PyTorch's `nn.LayerNorm` default, which the quantizer's norms keep. */
const EPS = 1e-5

/** [K, codes per sub-codebook, code_dim]; the shapes of every key are checked now, the values computed when written. */
export function precomputedCodebooks(weights: CheckpointWeights, arch: Architecture): TensorData {
  const { num_codebooks: books, codebook_size: codes } = arch.config.vocab
  const { codeDim, tableWidth, tableRows } = arch.quantizer
  const keys = Array.from({ length: books }, (_, k) => {
    const q = `${QUANTIZER}.${k}`
    return {
      rows: weights.rows(`${q}.embedding.weight`, [tableRows, tableWidth], k * codes, (k + 1) * codes),
      projection: weights.linear(`${q}.embedding_proj.weight`, tableWidth, codeDim),
      bias: weights.bias(`${q}.embedding_proj.bias`, codeDim),
      scale: weights.scale(`${q}.q_norm.weight`, codeDim),
      shift: weights.bias(`${q}.q_norm.bias`, codeDim),
    }
  })
  return {
    dims: [books, codes, codeDim],
    async write(put) {
      const session = await ort.InferenceSession.create(codebookGraph(codes, tableWidth, codeDim))
      try {
        for (const [k, parts] of keys.entries()) {
          const feeds: Record<string, ort.Tensor> = {}
          for (const [name, tensor] of Object.entries(parts))
            feeds[name] = new ort.Tensor('float32', await collect(tensor), [...tensor.dims])
          const out = await session.run(feeds)
          await put(k * codes * codeDim, (out.codebook as ort.Tensor).data as Float32Array)
        }
      } finally {
        await session.release()
      }
    },
  }
}

/** codebook = LayerNorm(rows @ projection + bias) · scale + shift, every table an input. */
function codebookGraph(codes: number, tableWidth: number, codeDim: number): Uint8Array {
  const g = new GraphBuilder('kelix_codebook')
  const rows = g.input('rows', 'float32', [codes, tableWidth])
  const projection = g.input('projection', 'float32', [tableWidth, codeDim])
  const bias = g.input('bias', 'float32', [codeDim])
  const scale = g.input('scale', 'float32', [codeDim])
  const shift = g.input('shift', 'float32', [codeDim])
  const projected = g.op('Add', [g.op('MatMul', [rows, projection]), bias])
  g.output(
    'codebook',
    'float32',
    [codes, codeDim],
    g.op('LayerNormalization', [projected, scale, shift], { axis: int(-1), epsilon: float(EPS) }),
  )
  return g.toBytes(OPSET)
}
