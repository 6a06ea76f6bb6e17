/**
 * The embedding table is written once, to embed_tokens.data, and both LLM
 * graphs read it in place (so the OS holds it once); a linked copy is refused
 * by name at load time, as ONNX Runtime would refuse it.
 */
import { copyFile, link, mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import onnxProto from 'onnx-proto'
import t from 'tap'
import { writeTinyCheckpoint } from '../../src/builder/tiny-checkpoint.js'
import { convertCheckpoint } from '../../src/convert/convert.js'
import { MODEL_FILES } from '../../src/engine/graph-signatures.js'
import { loadModel } from '../../src/engine/model.js'
import { readGraph } from '../helpers/onnx-files.js'
import { tinyModelDir } from '../helpers/tiny-model.js'

const TABLE = 'model.model.tok_embeddings.embed_tokens.weight'
/** ONNX TensorProto element types. */
const FLOAT = 1
const FLOAT16 = 10

/** Where each LLM graph's table initializer points, and its element type. */
async function tableReferences(
  dir: string,
): Promise<Array<{ file: string; dataType: number; externalData: Record<string, string> }>> {
  return Promise.all(
    [MODEL_FILES.decoder, MODEL_FILES.blockDecoder].map(async (file) => {
      const table = (await readGraph(dir, file)).graph?.initializer?.find((i) => i.name === TABLE)
      return {
        file,
        dataType: table?.dataType ?? -1,
        externalData: Object.fromEntries((table?.externalData ?? []).map((e) => [e.key, e.value ?? ''])),
      }
    }),
  )
}

/** Every initializer of a graph and of its subgraphs (the block decoder's vocabulary-part branches). */
function allInitializers(graph: onnxProto.onnx.IGraphProto | null | undefined): onnxProto.onnx.ITensorProto[] {
  if (graph == null) return []
  const nested = (graph.node ?? []).flatMap((n) => (n.attribute ?? []).flatMap((a) => allInitializers(a.g)))
  return [...(graph.initializer ?? []), ...nested]
}

t.test('both LLM graphs read the one table file at offset 0; neither graph data file holds a copy', async (t) => {
  const dir = await tinyModelDir()
  const bytes = 4608 * 256 * 4
  t.equal((await stat(join(dir, MODEL_FILES.embeddings))).size, bytes)
  for (const ref of await tableReferences(dir)) {
    t.same(
      ref,
      {
        file: ref.file,
        dataType: FLOAT,
        externalData: { location: MODEL_FILES.embeddings, offset: '0', length: String(bytes) },
      },
      ref.file,
    )
    const own = allInitializers((await readGraph(dir, ref.file)).graph).filter(
      (i) => i.externalData?.find((e) => e.key === 'location')?.value === `${ref.file}.data`,
    )
    t.notOk(
      own.some((i) => i.name === TABLE),
      `${ref.file}.data holds no table`,
    )
    const end = Math.max(
      ...own.map(
        (i) =>
          Number(i.externalData?.find((e) => e.key === 'offset')?.value) +
          Number(i.externalData?.find((e) => e.key === 'length')?.value),
      ),
    )
    t.equal((await stat(join(dir, `${ref.file}.data`))).size, end, `${ref.file}.data ends with its own last weight`)
  }
})

t.test('an fp16 table is one file of half the size, read as float16 by both graphs', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'kelix-shared-fp16-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  await writeTinyCheckpoint(join(root, 'checkpoint'), 1)
  await convertCheckpoint({
    from: join(root, 'checkpoint'),
    out: join(root, 'model'),
    precision: { embedding: 'fp16' },
  })
  const dir = join(root, 'model')
  t.equal((await stat(join(dir, MODEL_FILES.embeddings))).size, 4608 * 256 * 2)
  t.same(
    (await tableReferences(dir)).map((r) => [r.dataType, r.externalData.location]),
    [
      [FLOAT16, MODEL_FILES.embeddings],
      [FLOAT16, MODEL_FILES.embeddings],
    ],
  )
  const model = await loadModel(dir, { intraOpThreads: 1 })
  await model.dispose()
})

t.test('a hard-linked table is refused by name before ONNX Runtime sees it', async (t) => {
  const source = await tinyModelDir()
  const dir = await mkdtemp(join(tmpdir(), 'kelix-shared-linked-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  for (const name of await readdir(source))
    if (name !== MODEL_FILES.embeddings) await copyFile(join(source, name), join(dir, name))
  await copyFile(join(source, MODEL_FILES.embeddings), join(dir, 'table-original'))
  await link(join(dir, 'table-original'), join(dir, MODEL_FILES.embeddings))
  await t.rejects(loadModel(dir, { intraOpThreads: 1 }), {
    code: 'MODEL_GRAPH_INVALID',
    fields: { file: MODEL_FILES.embeddings },
    message:
      /embed_tokens\.data is a file with 2 hard links; ONNX Runtime reads external data only from a regular file with one link/,
  })
})
