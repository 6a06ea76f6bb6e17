/**
 * KV-cache exactness of decoder.onnx: one prefill of N blocks gives the same
 * hidden states as a prefill of k blocks followed by N−k one-block steps.
 * Batch 2, the shorter sequence left-padded through attention_mask. The cache
 * is threaded through `present_delta.*` (the default graph has no `present.*`).
 */
import ort from 'onnxruntime-node'
import t from 'tap'
import { join } from 'node:path'
import { loadModel, type KelixModel } from '../../src/engine/model.js'
import { i64, maxAbsDiff } from '../helpers/tensors.js'
import { tinyModelDir, tinyModelWith } from '../helpers/tiny-model.js'

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
    for (const part of ['key', 'value'])
      tensors[`past_key_values.${i}.${part}`] = new ort.Tensor('float32', new Float32Array(0), [
        2,
        num_key_value_heads,
        0,
        head_dim,
      ])
  }
  return { tensors, length: 0 }
}

/** Runs slots [from, to) for both sequences; returns hidden states [2, to-from, H] and the grown cache. */
async function run(model: KelixModel, cache: Cache, from: number, to: number) {
  const S = to - from
  const slots = Array.from({ length: S }, (_, s) => from + s)
  const feeds: Record<string, ort.Tensor> = {
    ...cache.tensors,
    block_ids: i64(
      [0, 1].flatMap((b) => slots.flatMap((s) => slotBlock(model, b, s))),
      [2, S, 9],
    ),
    attention_mask: i64(
      [0, 1].flatMap((b) => Array.from({ length: to }, (_, s) => slotMask(b, s))),
      [2, to],
    ),
    position_ids: i64(
      [0, 1].flatMap((b) => slots.map((s) => slotPosition(b, s))),
      [2, S],
    ),
  }
  const out = await model.decoder.run(feeds)
  const next: Cache = { tensors: {}, length: to }
  for (const [name, past] of Object.entries(cache.tensors))
    next.tensors[name] = concatTime(past, out[name.replace('past_key_values', 'present_delta')] as ort.Tensor)
  return { hidden: out.hidden_states as ort.Tensor, cache: next, out, feeds }
}

/** [B,H,P,D] ++ [B,H,S,D] along the time axis. */
function concatTime(past: ort.Tensor, delta: ort.Tensor): ort.Tensor {
  const [B, H, P, D] = past.dims as [number, number, number, number]
  const S = delta.dims[2] as number
  const data = new Float32Array(B * H * (P + S) * D)
  for (let bh = 0; bh < B * H; bh++) {
    data.set((past.data as Float32Array).subarray(bh * P * D, (bh + 1) * P * D), bh * (P + S) * D)
    data.set((delta.data as Float32Array).subarray(bh * S * D, (bh + 1) * S * D), (bh * (P + S) + P) * D)
  }
  return new ort.Tensor('float32', data, [B, H, P + S, D])
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
        worst = Math.max(
          worst,
          maxAbsDiff(hiddenAt(full.hidden, b, slot, 0), hiddenAt(part.hidden, b, slot, part.from)),
        )
      }
    }
    t.ok(worst < 1e-4, `k=${k}: max abs difference ${worst.toExponential(2)} < 1e-4`)
  }
})

t.test(
  'the conventional graph (whole present.* out) agrees with the default one, and present_delta is the tail of present',
  async (t) => {
    const model = await loadModel(await tinyModelDir())
    t.teardown(() => model.dispose())
    const both = await ort.InferenceSession.create(
      join(await tinyModelWith(t, { cacheOutputs: 'both' }), 'decoder.onnx'),
    )
    t.teardown(() => both.release())
    const first = await run(model, emptyCache(model), 0, 4)
    const feeds = (await run(model, first.cache, 4, 7)).feeds
    const fromDefault = await model.decoder.run(feeds)
    const fromBoth = await both.run(feeds)
    t.equal(
      maxAbsDiff(fromBoth.hidden_states?.data as Float32Array, fromDefault.hidden_states?.data as Float32Array),
      0,
      'same hidden states',
    )
    for (const name of ['0.key', '3.value']) {
      const present = fromBoth[`present.${name}`] as ort.Tensor
      const delta = fromDefault[`present_delta.${name}`] as ort.Tensor
      t.same(present.dims, [2, 2, 7, 64])
      t.same(delta.dims, [2, 2, 3, 64])
      t.equal(
        maxAbsDiff(
          concatTime(feeds[`past_key_values.${name}`] as ort.Tensor, delta).data as Float32Array,
          present.data as Float32Array,
        ),
        0,
        `present.${name} = past ++ present_delta.${name}`,
      )
    }
  },
)

t.test(
  'cache slots may be padded anywhere: a cache laid out from slot 0 with masked garbage after it gives the same step',
  async (t) => {
    const model = await loadModel(await tinyModelDir())
    t.teardown(() => model.dispose())
    const prefix = await run(model, emptyCache(model), 0, 6)
    const step = (await run(model, prefix.cache, 6, 7)).feeds
    // Sequence 1 (LENGTHS[1] = 4) has its cache in the last 4 of 6 slots; move it to slots 0..3 and fill 3 slots after it with noise.
    const PADDED = 9
    const padded: Record<string, ort.Tensor> = { ...step }
    for (const [name, tensor] of Object.entries(prefix.cache.tensors)) {
      const [B, H, P, D] = tensor.dims as [number, number, number, number]
      const data = Float32Array.from({ length: B * H * PADDED * D }, (_, i) => Math.sin(i) * 3)
      for (let b = 0; b < B; b++) {
        const skip = N - 1 - (LENGTHS[b] as number) + 1
        for (let h = 0; h < H; h++) {
          const from = ((b * H + h) * P + skip) * D
          data.set((tensor.data as Float32Array).subarray(from, from + (P - skip) * D), (b * H + h) * PADDED * D)
        }
      }
      padded[name] = new ort.Tensor('float32', data, [B, H, PADDED, D])
    }
    const cached = [0, 1].map((b) => 6 - (N - 1 - (LENGTHS[b] as number) + 1))
    padded.attention_mask = i64(
      [0, 1].flatMap((b) =>
        Array.from({ length: PADDED + 1 }, (_, s) => (s < (cached[b] as number) || s === PADDED ? 1 : 0)),
      ),
      [2, PADDED + 1],
    )
    const compact = await model.decoder.run(step)
    const moved = await model.decoder.run(padded)
    const worst = maxAbsDiff(compact.hidden_states?.data as Float32Array, moved.hidden_states?.data as Float32Array)
    t.ok(worst < 1e-5, `max abs difference ${worst.toExponential(2)} < 1e-5`)
    t.equal(
      maxAbsDiff(
        compact['present_delta.0.key']?.data as Float32Array,
        moved['present_delta.0.key']?.data as Float32Array,
      ),
      0,
      "the first layer's new keys (before any attention) are identical",
    )
  },
)
