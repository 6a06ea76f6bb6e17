/** Reading and probing the model directory's graphs, whose weights are ONNX external data. */
import { copyFile, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import onnxProto from 'onnx-proto'
import ort from 'onnxruntime-node'
import type { Test } from 'tap'
import { MODEL_FILES } from '../../src/engine/graph-signatures.js'

const { onnx } = onnxProto

export async function readGraph(dir: string, file: string): Promise<onnxProto.onnx.ModelProto> {
  return onnx.ModelProto.decode(await readFile(join(dir, file)))
}

/** The float32 values of the initializer `name` of `file`, read from its external data. */
export async function externalWeight(dir: string, file: string, name: string): Promise<Float32Array> {
  const model = await readGraph(dir, file)
  const tensor = model.graph?.initializer?.find((i) => i.name === name)
  if (tensor == null) throw new Error(`${file} has no initializer ${name}`)
  const field = (key: string) => Number(tensor.externalData?.find((e) => e.key === key)?.value)
  const location = tensor.externalData?.find((e) => e.key === 'location')?.value
  if (location == null) throw new Error(`${name} is not external data`)
  const bytes = new Uint8Array(field('length'))
  const handle = await open(join(dir, location), 'r')
  try {
    await handle.read(bytes, 0, bytes.length, field('offset'))
  } finally {
    await handle.close()
  }
  return new Float32Array(bytes.buffer)
}

/**
 * A session on `file` with the values `extraOutputs` also declared as outputs:
 * the graph is rewritten into a temporary directory beside copies of its data
 * files (its own, and the shared embedding table the LLM graphs read).
 */
export async function probeSession(
  t: Test,
  dir: string,
  file: string,
  extraOutputs: readonly string[],
): Promise<ort.InferenceSession> {
  const model = await readGraph(dir, file)
  const graph = model.graph as onnxProto.onnx.GraphProto
  for (const name of extraOutputs)
    graph.output.push(onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType: 1 } } }))
  const probe = await mkdtemp(join(tmpdir(), 'kelix-probe-'))
  t.teardown(() => rm(probe, { recursive: true, force: true }))
  await writeFile(join(probe, file), onnx.ModelProto.encode(model).finish())
  for (const data of [`${file}.data`, MODEL_FILES.embeddings]) await copyFile(join(dir, data), join(probe, data))
  const session = await ort.InferenceSession.create(join(probe, file))
  t.teardown(() => session.release())
  return session
}
