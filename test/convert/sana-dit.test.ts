/**
 * dit.onnx built from the DiT reference checkpoint (../shared/kelix-reference/dit)
 * computes what the reference's SanaModel computes: the connector, velocities
 * with full and padded masks, the null caption of classifier-free guidance and
 * the guided velocity of a sampling run's first step (the server's sampler runs
 * whole runs in image-reference.test.ts), within the README's tolerances. Also:
 * config.json parsing and refusals, and random checkpoints in the same layout.
 */
import { readFileSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ort from 'onnxruntime-node'
import t, { type Test } from 'tap'
import { GraphBuilder } from '../../src/builder/graph.js'
import {
  KELIX_DIT_SIZES,
  sanaConfigJson,
  sanaFfnInner,
  sanaTensorSpecs,
  type SanaCheckpointSizes,
} from '../../src/builder/sana-checkpoint-layout.js'
import { buildSanaConnector, buildSanaDit, sinCosPositionTable, type SanaDitSpec } from '../../src/builder/sana-dit.js'
import { elementCount } from '../../src/builder/tensor-data.js'
import { seededTensors } from '../../src/builder/tiny-checkpoint.js'
import { SeededWeights } from '../../src/builder/weights.js'
import { Checkpoint, writeCheckpoint, type TensorToWrite } from '../../src/convert/checkpoint.js'
import { CheckpointTensors } from '../../src/convert/checkpoint-weights.js'
import { parseSanaConfig, sanaConditionLength, type SanaDitConfig } from '../../src/convert/sana-config.js'
import {
  DIT_REFERENCE_CHECKPOINT,
  readDitReference,
  type DitSamplingRun,
  type DitVelocityCase,
} from '../helpers/dit-reference.js'
import { relativeError } from '../helpers/kelix-reference.js'
import { float32s, i64 } from '../helpers/tensors.js'
import { KelixError } from '../../src/errors/kelix-error.js'

const ref = readDitReference()
const REFERENCE_CONFIG = readFileSync(join(DIT_REFERENCE_CHECKPOINT, 'config.json'), 'utf8')

/** The reference checkpoint's sizes, as sana-checkpoint-layout writes them. */
const REFERENCE_SIZES: SanaCheckpointSizes = {
  inputSize: 6,
  patchSize: 1,
  inChannels: 8,
  hidden: 64,
  depth: 2,
  crossHeads: 4,
  linearHeadDim: 16,
  mlpRatio: 2.5,
  captionChannels: 48,
  connectorChannels: 64,
  conditionLength: 24,
  vaeDownsampleRate: 8,
}

/** A built DiT: its session and what it was built from. */
interface Dit {
  session: ort.InferenceSession
  spec: SanaDitSpec
}

/** One batch row of dit.onnx's inputs. */
interface DitRow {
  latents: Float32Array
  sigma: number
  condition: Float32Array
  mask: readonly number[]
  unconditional: boolean
}

let root: string
let dit: Dit
let connector: ort.InferenceSession

t.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'sana-dit-'))
  const built = await buildFromCheckpoint(DIT_REFERENCE_CHECKPOINT, join(root, 'reference'), { connector: true })
  dit = built.dit
  connector = built.connector as ort.InferenceSession
})
t.teardown(async () => {
  await dit?.session.release()
  await connector?.release()
  await rm(root, { recursive: true, force: true })
})

/** Writes dit.onnx (and, if asked, the connector's test graph) from a checkpoint, and opens them. */
async function buildFromCheckpoint(
  checkpointDir: string,
  outDir: string,
  opts: { connector?: boolean } = {},
): Promise<{ dit: Dit; connector?: ort.InferenceSession }> {
  await mkdir(outDir, { recursive: true })
  const config = parseSanaConfig(await readFile(join(checkpointDir, 'config.json'), 'utf8'))
  const checkpoint = await Checkpoint.open(checkpointDir)
  try {
    const spec: SanaDitSpec = { config, conditionLength: sanaConditionLength(checkpoint) }
    const weights = new CheckpointTensors(checkpoint)
    await buildSanaDit({ g: new GraphBuilder('kelix_dit'), w: weights }, spec).save(join(outDir, 'dit.onnx'))
    if (opts.connector)
      await buildSanaConnector({ g: new GraphBuilder('kelix_dit_connector'), w: weights }, spec).save(
        join(outDir, 'connector.onnx'),
      )
    const session = await ort.InferenceSession.create(join(outDir, 'dit.onnx'), { intraOpNumThreads: 1 })
    const result: { dit: Dit; connector?: ort.InferenceSession } = { dit: { session, spec } }
    if (opts.connector)
      result.connector = await ort.InferenceSession.create(join(outDir, 'connector.onnx'), { intraOpNumThreads: 1 })
    return result
  } finally {
    await checkpoint.close()
  }
}

/** Runs one batch and returns each row's velocity, after checking the output's exact shape. */
async function velocities(t: Test, model: Dit, rows: readonly DitRow[]): Promise<Float32Array[]> {
  const { config: c, conditionLength: length } = model.spec
  const width = c.connectorChannels ?? c.captionChannels
  const side = c.inputSize
  const concat = (parts: Float32Array[]) => Float32Array.from(parts.flatMap((p) => Array.from(p)))
  const batch = rows.length
  const out = await model.session.run({
    latents: new ort.Tensor('float32', concat(rows.map((r) => r.latents)), [batch, c.inChannels, side, side]),
    timestep: new ort.Tensor('float32', Float32Array.from(rows.map((r) => r.sigma)), [batch]),
    condition: new ort.Tensor('float32', concat(rows.map((r) => r.condition)), [batch, length, width]),
    condition_mask: i64(
      rows.flatMap((r) => r.mask),
      [batch, length],
    ),
    unconditional: new ort.Tensor(
      'bool',
      rows.map((r) => r.unconditional),
      [batch],
    ),
  })
  const velocity = out.velocity as ort.Tensor
  t.same(velocity.dims, [batch, c.inChannels, side, side], 'velocity shape')
  const data = velocity.data as Float32Array
  const size = data.length / batch
  return rows.map((_, i) => data.slice(i * size, (i + 1) * size))
}

function caseRow(v: DitVelocityCase, unconditional = false): DitRow {
  return {
    latents: float32s(v.latents),
    sigma: v.sigma,
    condition: float32s(v.condition),
    mask: v.condition_mask,
    unconditional,
  }
}

function within(t: Test, actual: Float32Array, expected: Float32Array, tol: number, what: string): void {
  const { worst, bound } = relativeError(actual, expected, tol)
  t.ok(worst <= bound, `${what}: max |diff| ${worst.toExponential(2)} ≤ ${bound.toExponential(2)} (rel ${tol})`)
}

function randomValues(seed: number, size: number, std = 1): Float32Array {
  return new SeededWeights(seed).random('test-input', size, std)
}

t.test('the reference config.json parses to the sizes of the reference checkpoint', async (t) => {
  t.same(parseSanaConfig(REFERENCE_CONFIG), {
    inputSize: 6,
    patchSize: 1,
    inChannels: 8,
    outChannels: 8,
    hidden: 64,
    depth: 2,
    crossHeads: 4,
    linearHeadDim: 16,
    ffnInner: 160,
    captionChannels: 48,
    connectorChannels: 64,
    positionEmbedding: null,
    yNorm: { eps: 1e-5 },
    vaeDownsampleRate: 8,
  } satisfies SanaDitConfig)
  t.equal(JSON.parse(REFERENCE_CONFIG).model_max_length, 10, 'the stale value the converter must not use')
  const checkpoint = await Checkpoint.open(DIT_REFERENCE_CHECKPOINT)
  t.teardown(() => checkpoint.close())
  t.equal(sanaConditionLength(checkpoint), ref.condition_length, 'condition length from the null caption rows')
  t.equal(ref.condition_length, 24)
})

t.test('diffusion_connector gives the reference output within 1e-4', async (t) => {
  const out = await connector.run({
    condition: new ort.Tensor('float32', float32s(ref.connector.condition), [1, 24, 64]),
  })
  const connected = out.connected as ort.Tensor
  t.same(connected.dims, [1, 24, 48])
  within(t, connected.data as Float32Array, float32s(ref.connector.output), 1e-4, 'connector')
})

t.test('velocity of both reference cases is within 1e-4', async (t) => {
  t.same(
    ref.velocity.map((v) => v.name),
    ['full_mask', 'padded_mask'],
  )
  for (const v of ref.velocity) {
    const [velocity] = await velocities(t, dit, [caseRow(v)])
    within(t, velocity as Float32Array, float32s(v.velocity), 1e-4, v.name)
  }
})

t.test('σ·1000 is truncated, not rounded: the reference cases sit where the two differ', async (t) => {
  for (const v of ref.velocity) {
    const scaled = Math.fround(Math.fround(v.sigma) * 1000)
    t.ok(
      Math.trunc(scaled) === v.timestep_long && Math.round(scaled) !== v.timestep_long,
      `${v.name}: t = ${scaled} → ${v.timestep_long}`,
    )
  }
  const v = ref.velocity[0] as DitVelocityCase
  const [truncated] = await velocities(t, dit, [caseRow(v)])
  const [next] = await velocities(t, dit, [{ ...caseRow(v), sigma: (v.timestep_long + 1.5) / 1000 }])
  const { worst } = relativeError(next as Float32Array, truncated as Float32Array, 0)
  t.ok(
    worst > 1e-3,
    `t + 1 changes the velocity (max |diff| ${worst.toExponential(2)}), so the 1e-4 match above pins t`,
  )
})

t.test('unconditional rows: the null caption, batch independence, conditions ignored', async (t) => {
  const cond = caseRow(ref.velocity[1] as DitVelocityCase)
  const [alone] = await velocities(t, dit, [cond])
  const garbage = (seed: number): DitRow => ({
    ...cond,
    condition: randomValues(seed, cond.condition.length, 3),
    mask: cond.mask.map((_, i) => ((i * seed) % 3 === 0 ? 0 : 1)),
    unconditional: true,
  })
  const [uncondA, condInBatch] = await velocities(t, dit, [garbage(1), cond])
  const [uncondB] = await velocities(t, dit, [garbage(2), cond])
  within(
    t,
    condInBatch as Float32Array,
    alone as Float32Array,
    1e-6,
    'the conditional row of [uncond, cond] against the row alone',
  )
  t.same(
    Array.from(uncondA as Float32Array),
    Array.from(uncondB as Float32Array),
    'the unconditional row is bit-identical whatever its condition and mask',
  )
  const { worst } = relativeError(uncondA as Float32Array, condInBatch as Float32Array, 0)
  t.ok(worst > 1e-2, `the unconditional row differs from the conditional one (max |diff| ${worst.toExponential(2)})`)
  const [zeroMask] = await velocities(t, dit, [{ ...cond, mask: cond.mask.map(() => 0), unconditional: true }])
  t.same(
    Array.from(zeroMask as Float32Array),
    Array.from(uncondA as Float32Array),
    'an all-zero mask is replaced by ones too',
  )
})

/** `runs[name]`'s condition and mask ("velocity[1].condition") resolved to the velocity case. */
function runCondition(run: DitSamplingRun): DitVelocityCase {
  const match = /^velocity\[(\d+)\]\.condition$/.exec(run.condition)
  const v = ref.velocity[Number(match?.[1])]
  if (v === undefined || run.condition_mask !== `${run.condition}_mask`)
    throw new Error(`unexpected condition reference ${run.condition} / ${run.condition_mask}`)
  return v
}

t.test('guidance 4.5 at step 0 (null caption exactly): v_u + 4.5·(v_c − v_u) within 1e-3', async (t) => {
  const run = ref.sampling.find((r) => r.guidance !== 1) as DitSamplingRun
  t.equal(run.guidance, 4.5)
  const v = runCondition(run)
  const noise = float32s(run.initial_noise)
  const row = {
    latents: noise,
    sigma: run.sigmas[0] as number,
    condition: float32s(v.condition),
    mask: v.condition_mask,
  }
  const [u, c] = (await velocities(t, dit, [
    { ...row, unconditional: true },
    { ...row, unconditional: false },
  ])) as [Float32Array, Float32Array]
  const stepVelocities = float32s(run.velocity_per_step)
  within(t, guide(u, c, run.guidance), stepVelocities.subarray(0, noise.length), 1e-3, 'guided velocity, step 0')
})

/** The demo's guided velocity in float32: v_u + g·(v_c − v_u). */
function guide(u: Float32Array, c: Float32Array, guidance: number): Float32Array {
  return u.map((x, i) => Math.fround(x + Math.fround(guidance * Math.fround((c[i] as number) - x))))
}

t.test(
  'a spec whose condition length disagrees with the checkpoint is a shape mismatch naming the null caption',
  async (t) => {
    const checkpoint = await Checkpoint.open(DIT_REFERENCE_CHECKPOINT)
    t.teardown(() => checkpoint.close())
    const spec: SanaDitSpec = { config: parseSanaConfig(REFERENCE_CONFIG), conditionLength: 10 }
    const error = catchError(() =>
      buildSanaDit({ g: new GraphBuilder('dit'), w: new CheckpointTensors(checkpoint) }, spec),
    )
    t.equal(error?.code, 'CHECKPOINT_SHAPE_MISMATCH')
    t.match(error?.message, /y_embedder\.y_embedding has shape \[24, 48\], expected \[10, 48\]/)
  },
)

function catchError(fn: () => unknown): KelixError | undefined {
  try {
    fn()
  } catch (err) {
    if (err instanceof KelixError) return err
    throw err
  }
  return undefined
}

function configWith(changes: Record<string, unknown>, remove: readonly string[] = []): string {
  const json = { ...(JSON.parse(REFERENCE_CONFIG) as Record<string, unknown>), ...changes }
  for (const key of remove) delete json[key]
  return JSON.stringify(json)
}

t.test('config flags the graph does not implement are refused by name', async (t) => {
  const refused: Array<[string, unknown]> = [
    ['qk_norm', true],
    ['cross_norm', true],
    ['use_cross_attn_rope', true],
    ['cross_attn_x_norm', true],
    ['attn_type', 'flash'],
    ['cross_attn_type', 'linear_rope'],
    ['ffn_type', 'mlp'],
    ['mlp_acts', ['silu', 'gelu', null]],
    ['mlp_acts', ['silu', 'silu']],
    ['model_class', 'SanaMSModel'],
  ]
  for (const [field, value] of refused) {
    const error = catchError(() => parseSanaConfig(configWith({ [field]: value })))
    t.equal(error?.code, 'CHECKPOINT_CONFIG_INVALID', `${field}: ${JSON.stringify(value)}`)
    t.match(
      error?.message,
      new RegExp(`^config\\.json: ${field} is ${escape(JSON.stringify(value))}: not implemented`),
      `${field}: message names the field and value`,
    )
  }
})

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

t.test('malformed or foreign configs are refused with the field named', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['not json', /not valid JSON/],
    [JSON.stringify({ __class__: 'KeyeARConfig' }), /__class__ is "KeyeARConfig", expected "SanaConfig"/],
    [configWith({ new_flag: true }), /unknown field new_flag/],
    [configWith({ hidden_size: 60 }), /hidden_size \(60\) is not a multiple of linear_head_dim \(16\)/],
    [configWith({ num_heads: 5 }), /hidden_size \(64\) is not a multiple of num_heads \(5\)/],
    [configWith({ input_size: 7, patch_size: 2 }), /input_size \(7\) is not a multiple of patch_size \(2\)/],
    [configWith({ depth: 0 }), /depth is 0, expected a positive integer/],
    [
      configWith({ use_connector: true, connector_channels: null }),
      /connector_channels is null, expected a positive integer/,
    ],
    [configWith({ y_norm: 'yes' }), /y_norm is "yes", expected true or false/],
  ]
  for (const [text, message] of cases) {
    const error = catchError(() => parseSanaConfig(text, 'dit/config.json'))
    t.equal(error?.code, 'CHECKPOINT_CONFIG_INVALID', String(message))
    t.match(error?.message, message)
    t.match(error?.message, /^dit\/config\.json: /, 'names the file')
  }
})

t.test('fields absent from config.json keep the SanaConfig defaults; implemented flags are read', async (t) => {
  const sparse = parseSanaConfig(
    configWith({}, [
      'qk_norm',
      'cross_norm',
      'use_cross_attn_rope',
      'use_pe',
      'pred_sigma',
      'y_norm',
      'use_connector',
      'norm_eps',
      'mlp_acts',
    ]),
  )
  t.equal(sparse.connectorChannels, null, 'use_connector defaults to false')
  t.same(sparse.yNorm, { eps: 1e-5 }, 'y_norm defaults to true, norm_eps to 1e-5')
  t.equal(sparse.positionEmbedding, null)
  t.equal(sparse.outChannels, 8)
  const flags = parseSanaConfig(
    configWith({
      use_pe: true,
      pe_interpolation: 2,
      pred_sigma: true,
      y_norm: false,
      use_connector: false,
      cross_attn_type: 'linear',
      use_position_scale: true,
      mlp_ratio: 2.7,
    }),
  )
  t.same(flags.positionEmbedding, { interpolation: 2 })
  t.equal(flags.outChannels, 16, 'pred_sigma doubles the final layer')
  t.equal(flags.yNorm, null)
  t.equal(flags.connectorChannels, null)
  t.equal(flags.ffnInner, 172, 'int(64 · 2.7)')
})

t.test(
  'the layout writes the reference checkpoint: same keys and shapes, same config but the true condition length',
  async (t) => {
    const checkpoint = await Checkpoint.open(DIT_REFERENCE_CHECKPOINT)
    t.teardown(() => checkpoint.close())
    const specs = sanaTensorSpecs(REFERENCE_SIZES)
    t.same(specs.map((s) => s.key).sort(), checkpoint.keys().sort())
    for (const s of specs) t.same(s.shape, checkpoint.tensor(s.key).shape, s.key)
    t.same(sanaConfigJson(REFERENCE_SIZES), { ...JSON.parse(REFERENCE_CONFIG), model_max_length: 24 })
  },
)

t.test('KELIX_DIT_SIZES give the real Kelix-DiT', async (t) => {
  t.equal(sanaFfnInner(KELIX_DIT_SIZES), 5600)
  const config = parseSanaConfig(JSON.stringify(sanaConfigJson(KELIX_DIT_SIZES)))
  t.match(config, {
    hidden: 2240,
    depth: 20,
    crossHeads: 20,
    linearHeadDim: 32,
    ffnInner: 5600,
    captionChannels: 2304,
    connectorChannels: 4096,
    inChannels: 32,
    inputSize: 32,
  })
  const specs = sanaTensorSpecs(KELIX_DIT_SIZES)
  t.equal(specs.length, 23 + 19 * 20)
  const byKey = new Map(specs.map((s) => [s.key, s.shape]))
  t.same(byKey.get('y_embedder.y_embedding'), [720, 2304])
  t.same(byKey.get('blocks.19.mlp.inverted_conv.conv.weight'), [11200, 2240, 1, 1])
  t.same(byKey.get('blocks.0.mlp.point_conv.conv.weight'), [2240, 5600, 1, 1])
  t.same(byKey.get('diffusion_connector.0.weight'), [2304, 4096])
  const parameters = specs.reduce((n, s) => n + elementCount(s.shape), 0)
  t.ok(parameters > 1.5e9 && parameters < 1.7e9, `${(parameters / 1e9).toFixed(3)} B parameters (SANA 1.6B)`)
})

t.test('the sin-cos position table: [sin, cos] of the column, then of the row', async (t) => {
  const table = sinCosPositionTable(8, 2, 1)
  const row = (r: number, c: number) => Array.from(table.subarray((r * 2 + c) * 8, (r * 2 + c + 1) * 8))
  const f = (values: number[]) => values.map((v) => Math.fround(v))
  t.same(row(0, 0), f([0, 0, 1, 1, 0, 0, 1, 1]))
  t.same(row(0, 1), f([Math.sin(1), Math.sin(0.01), Math.cos(1), Math.cos(0.01), 0, 0, 1, 1]))
  t.same(row(1, 0), f([0, 0, 1, 1, Math.sin(1), Math.sin(0.01), Math.cos(1), Math.cos(0.01)]))
  t.same(
    Array.from(sinCosPositionTable(4, 2, 2).subarray(4, 8)),
    f([Math.sin(0.5), Math.cos(0.5), 0, 1]),
    'positions divided by pe_interpolation',
  )
})

/** Tiny random checkpoints: sizes, and config.json changes with the tensors they need. */
const TINY: SanaCheckpointSizes = {
  inputSize: 4,
  patchSize: 1,
  inChannels: 4,
  hidden: 32,
  depth: 2,
  crossHeads: 2,
  linearHeadDim: 8,
  mlpRatio: 2.5,
  captionChannels: 24,
  connectorChannels: 16,
  conditionLength: 5,
  vaeDownsampleRate: 8,
}

async function tinyDit(
  t: Test,
  name: string,
  sizes: SanaCheckpointSizes,
  configChanges: Record<string, unknown> = {},
  tensorChanges: (tensors: Map<string, TensorToWrite>) => void = () => {},
): Promise<Dit> {
  const dir = join(root, name)
  const tensors = seededTensors(sanaTensorSpecs(sizes), 7)
  tensorChanges(tensors)
  const config = { ...sanaConfigJson(sizes), ...configChanges }
  await writeCheckpoint(join(dir, 'checkpoint'), tensors, {
    dtype: 'BF16',
    shardBytes: 64 * 1024,
    extraFiles: { 'config.json': `${JSON.stringify(config, null, 2)}\n` },
  })
  const built = await buildFromCheckpoint(join(dir, 'checkpoint'), join(dir, 'model'))
  t.teardown(() => built.dit.session.release())
  return built.dit
}

async function checkBounded(t: Test, model: Dit, what: string): Promise<void> {
  const { config: c, conditionLength: length } = model.spec
  const latentSize = c.inChannels * c.inputSize * c.inputSize
  const condition = randomValues(3, length * (c.connectorChannels ?? c.captionChannels))
  const row = {
    latents: randomValues(1, latentSize),
    sigma: 0.6,
    condition,
    mask: Array.from({ length }, (_, i) => (i < length - 1 ? 1 : 0)),
  }
  const [u, v] = (await velocities(t, model, [
    { ...row, unconditional: true },
    { ...row, unconditional: false },
  ])) as [Float32Array, Float32Array]
  for (const [name, out] of [
    ['unconditional', u],
    ['conditional', v],
  ] as const) {
    const largest = out.reduce((m, x) => Math.max(m, Math.abs(x)), 0)
    t.ok(
      out.every(Number.isFinite) && largest > 0.05 && largest < 20,
      `${what}, ${name}: finite, max |v| ${largest.toFixed(3)} in (0.05, 20)`,
    )
  }
  t.ok(relativeError(u, v, 0).worst > 1e-3, `${what}: the condition changes the velocity`)
}

t.test('random checkpoints in the published layout build and give bounded velocities', async (t) => {
  await checkBounded(t, await tinyDit(t, 'tiny', TINY), 'tiny')
  await checkBounded(t, await tinyDit(t, 'tiny-patch2', { ...TINY, inputSize: 8, patchSize: 2 }), 'patch 2')
  const doubled = (tensors: Map<string, TensorToWrite>) => {
    const { hidden, inChannels } = TINY
    tensors.set('final_layer.linear.weight', {
      shape: [2 * inChannels, hidden],
      data: new SeededWeights(9).random('w', 2 * inChannels * hidden, 1 / Math.sqrt(hidden)),
    })
    tensors.set('final_layer.linear.bias', { shape: [2 * inChannels], data: new Float32Array(2 * inChannels) })
  }
  await checkBounded(
    t,
    await tinyDit(t, 'tiny-flags', TINY, { use_pe: true, pred_sigma: true, y_norm: false }, doubled),
    'use_pe, pred_sigma, no y_norm',
  )
  await checkBounded(
    t,
    await tinyDit(t, 'tiny-no-connector', TINY, { use_connector: false, connector_channels: null }),
    'no connector',
  )
})
