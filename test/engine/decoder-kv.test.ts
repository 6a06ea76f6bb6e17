/**
 * KV-cache exactness of decoder.onnx: one prefill of N blocks gives the same
 * hidden states as a prefill of k blocks followed by N−k one-block steps.
 * Batch 2, the shorter sequence left-padded through attention_mask.
 */
import ort from 'onnxruntime-node'
import t from 'tap'
import { loadModel, type KelixModel } from '../../src/engine/model.js'
import { i64, maxAbsDiff } from '../helpers/tensors.js'
import { tinyModelDir } from '../helpers/tiny-model.js'

const N = 7
const LENGTHS = [7, 4]

/** Slot layout: sequence b's real blocks fill the last LENGTHS[b] of N slots. */
function slotBlock(model: KelixModel, b: number, slot: number): number[] {
  const { eob } = model.config.special_tokens
  const pad = N - (LENGTHS[b] as number)
  if (slot < pad) return Array(9).fill(eob)
  const step = slot - pad
  // Alternate text blocks and image blocks (8 codes, one per sub-codebook).
  if (step % 2 === 0) return [10 + 37 * b + step, ...Array(8).fill(eob)]
  const { visual_id_offset: offset, codebook_size: size } = model.config.vocab
  return [...Array.from({ length: 8 }, (_, k) => offset + k * size + ((step * 31 + k * 7 + b) % size)), eob]
}

const slotMask = (b: number, slot: number) => (slot >= N - (LENGTHS[b] as number) ? 1 : 0)
const slotPosition = (b: number, slot: number) => Math.max(0, slot - (N - (LENGTHS[b] as number)))

interface Cache {
  tensors: Record<string, ort.Tensor>
  length: number
}

function emptyCache(model: KelixModel): Cache {
  const { num_layers, num_key_value_heads, head_dim } = model.config.llm
  const tensors: Record<string, ort.Tensor> = {}
  for (let i = 0; i < num_layers; i++) {
    for (const part of ['key', 'value']) tensors[`past_key_values.${i}.${part}`] = new ort.Tensor('float32', new Float32Array(0), [2, num_key_value_heads, 0, head_dim])
  }
  return { tensors, length: 0 }
}

/** Runs slots [from, to) for both sequences; returns hidden states [2, to-from, H] and the grown cache. */
async function run(model: KelixModel, cache: Cache, from: number, to: number) {
  const S = to - from
  const slots = Array.from({ length: S }, (_, s) => from + s)
  const feeds: Record<string, ort.Tensor> = {
    ...cache.tensors,
    block_ids: i64([0, 1].flatMap((b) => slots.flatMap((s) => slotBlock(model, b, s))), [2, S, 9]),
    attention_mask: i64([0, 1].flatMap((b) => Array.from({ length: to }, (_, s) => slotMask(b, s))), [2, to]),
    position_ids: i64([0, 1].flatMap((b) => slots.map((s) => slotPosition(b, s))), [2, S]),
  }
  const out = await model.decoder.run(feeds)
  const next: Cache = { tensors: {}, length: to }
  for (const name of Object.keys(cache.tensors)) next.tensors[name] = out[name.replace('past_key_values', 'present')] as ort.Tensor
  return { hidden: out.hidden_states as ort.Tensor, cache: next, out }
}

/** Hidden state of sequence b at absolute slot `slot`, from a run covering [from, from+S). */
function hiddenAt(hidden: ort.Tensor, b: number, slot: number, from: number): Float32Array {
  const [, S, H] = hidden.dims as [number, number, number]
  const data = hidden.data as Float32Array
  return data.subarray((b * S + (slot - from)) * H, (b * S + (slot - from) + 1) * H)
}

t.test('prefill then one-block steps reproduce a single prefill, for several split points', async (t) => {
  const model = await loadModel(await tinyModelDir())
  t.teardown(() => model.dispose())
  const full = await run(model, emptyCache(model), 0, N)

  for (const k of [1, 3, 5, 6]) {
    let { cache, hidden } = await run(model, emptyCache(model), 0, k)
    const stepped: Array<{ hidden: ort.Tensor; from: number }> = [{ hidden, from: 0 }]
    for (let slot = k; slot < N; slot++) {
      ;({ cache, hidden } = await run(model, cache, slot, slot + 1))
      stepped.push({ hidden, from: slot })
    }
    let worst = 0
    for (const b of [0, 1]) {
      for (let slot = N - (LENGTHS[b] as number); slot < N; slot++) {
        const part = stepped.find((p) => slot >= p.from && slot < p.from + (p.hidden.dims[1] as number))
        if (part === undefined) throw new Error(`slot ${slot} not computed`)
        worst = Math.max(worst, maxAbsDiff(hiddenAt(full.hidden, b, slot, 0), hiddenAt(part.hidden, b, slot, part.from)))
      }
    }
    t.ok(worst < 1e-4, `k=${k}: max abs difference ${worst.toExponential(2)} < 1e-4`)
  }
})

t.test('present_delta holds exactly the new positions of present', async (t) => {
  const model = await loadModel(await tinyModelDir())
  t.teardown(() => model.dispose())
  const first = await run(model, emptyCache(model), 0, 4)
  const second = await run(model, first.cache, 4, 7)
  for (const name of ['0.key', '3.value']) {
    const present = second.out[`present.${name}`] as ort.Tensor
    const delta = second.out[`present_delta.${name}`] as ort.Tensor
    t.same(present.dims, [2, 2, 7, 64])
    t.same(delta.dims, [2, 2, 3, 64])
    const p = present.data as Float32Array
    const d = delta.data as Float32Array
    let worst = 0
    for (let row = 0; row < 4; row++) {
      for (let s = 0; s < 3; s++) {
        const fromPresent = p.subarray((row * 7 + 4 + s) * 64, (row * 7 + 5 + s) * 64)
        worst = Math.max(worst, maxAbsDiff(fromPresent, d.subarray((row * 3 + s) * 64, (row * 3 + s + 1) * 64)))
      }
    }
    t.equal(worst, 0, `present_delta.${name} is the tail of present.${name}`)
  }
})
