/**
 * Bytes of weights one chat decode step reads at batch 1, counted from the
 * exported graphs' initializers (their external-data lengths), so the count
 * follows whatever precision the converter wrote:
 *
 *   decoder.onnx        every weight (all layers' linears, norms), and 9 rows
 *                       of the embedding table (one block's ids), not the table
 *   block_decoder.onnx  one micro-step (a chat block is one text token: slot 0
 *                       only, sequence.ts), which runs its own layers and the
 *                       LM head's text part; the codebook parts run only for
 *                       image slots, and slot 0 gathers no embedding rows
 *
 * The KV cache read (a few MB at short contexts) is not counted.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import onnxProto from 'onnx-proto'
import { MODEL_FILES } from '../src/engine/graph-signatures.js'

const { onnx } = onnxProto

export interface StepReads {
  /** decoder.onnx's own weights (decoder.onnx.data and inline constants). */
  decoderBytes: number
  /** 9 rows of the embedding table, at its stored precision. */
  embeddingRowBytes: number
  /** The block decoder's layers, projections, norms and slot table. */
  blockDecoderBytes: number
  /** The LM head's text part (151,936 rows for Kelix), at the head's precision. */
  lmHeadTextBytes: number
  /** One codebook part of the LM head (read per image slot; not in a chat step). */
  lmHeadCodebookPartBytes: number
  /** What a chat decode step at batch 1 reads: all of the above but the codebook part. */
  totalBytes: number
}

interface Initializer {
  name: string
  dims: number[]
  location: string | undefined
  bytes: number
}

/** Every initializer of the graph, those of `If` branches included. */
async function initializers(dir: string, file: string): Promise<Initializer[]> {
  const model = onnx.ModelProto.decode(await readFile(join(dir, file)))
  const found: Initializer[] = []
  const walk = (g: onnxProto.onnx.IGraphProto) => {
    for (const t of g.initializer ?? []) {
      const field = (key: string) => t.externalData?.find((e) => e.key === key)?.value ?? undefined
      const inline =
        (t.rawData?.length ?? 0) +
        4 * (t.floatData?.length ?? 0) +
        8 * (t.int64Data?.length ?? 0) +
        4 * (t.int32Data?.length ?? 0)
      found.push({
        name: t.name ?? '',
        dims: (t.dims ?? []).map(Number),
        location: field('location'),
        bytes: field('length') === undefined ? inline : Number(field('length')),
      })
    }
    for (const node of g.node ?? []) for (const a of node.attribute ?? []) if (a.g != null) walk(a.g)
  }
  walk(model.graph as onnxProto.onnx.IGraphProto)
  return found
}

const isEmbedding = (t: Initializer) => t.location === MODEL_FILES.embeddings
/** The LM head's parts are `model.model.output.weight.{text|codebook_k}` (+ suffixes when quantized). */
const headPart = (t: Initializer) => /\.output\.weight\.(text|codebook_\d+)/.exec(t.name)?.[1]
const sum = (ts: readonly Initializer[]) => ts.reduce((n, t) => n + t.bytes, 0)

export async function decodeStepReads(dir: string, blockSize = 9): Promise<StepReads> {
  const decoder = await initializers(dir, MODEL_FILES.decoder)
  const table = decoder.find(isEmbedding)
  if (table === undefined) throw new Error(`${MODEL_FILES.decoder} reads no ${MODEL_FILES.embeddings}`)
  const embeddingRowBytes = blockSize * (table.bytes / (table.dims[0] as number))
  const block = (await initializers(dir, MODEL_FILES.blockDecoder)).filter((t) => !isEmbedding(t))
  const text = block.filter((t) => headPart(t) === 'text')
  const codebook0 = block.filter((t) => headPart(t) === 'codebook_0')
  if (text.length === 0 || codebook0.length === 0)
    throw new Error(`${MODEL_FILES.blockDecoder} has no LM head parts (an export without vocab_part?)`)
  const decoderBytes = sum(decoder.filter((t) => !isEmbedding(t)))
  const blockDecoderBytes = sum(block.filter((t) => headPart(t) === undefined))
  const lmHeadTextBytes = sum(text)
  return {
    decoderBytes,
    embeddingRowBytes,
    blockDecoderBytes,
    lmHeadTextBytes,
    lmHeadCodebookPartBytes: sum(codebook0),
    totalBytes: decoderBytes + embeddingRowBytes + blockDecoderBytes + lmHeadTextBytes,
  }
}
