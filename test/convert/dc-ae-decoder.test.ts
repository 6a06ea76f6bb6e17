/**
 * vae_decoder.onnx built from diffusers' AutoencoderDC layout computes what
 * diffusers computes: the reference set's images (../shared/kelix-reference/vae,
 * rel 1e-4 and 8-bit pixels within ±1), and, for the configurations the set
 * does not cover, a plain-loop float64 decoder (itself checked on the set).
 * The config parser refuses by name every value the graph does not implement.
 */
import { readFileSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ort from 'onnxruntime-node'
import t from 'tap'
import {
  dcAeConfigJson,
  dcAeDecoderTensorSpecs,
  KELIX_VAE_SIZES,
  type DcAeSizes,
} from '../../src/builder/dc-ae-checkpoint-layout.js'
import { buildDcAeDecoder } from '../../src/builder/dc-ae-decoder.js'
import { GraphBuilder } from '../../src/builder/graph.js'
import { seededTensors } from '../../src/builder/tiny-checkpoint.js'
import { SeededWeights } from '../../src/builder/weights.js'
import { Checkpoint, writeCheckpoint } from '../../src/convert/checkpoint.js'
import { CheckpointTensors } from '../../src/convert/checkpoint-weights.js'
import { parseDcAeConfig, type DcAeConfig } from '../../src/convert/dc-ae-config.js'
import { KelixError } from '../../src/errors/kelix-error.js'
import { toRgb } from '../../src/engine/image-gen/image-output.js'
import { relativeError } from '../helpers/kelix-reference.js'
import { float32s } from '../helpers/tensors.js'
import { naiveDcAeDecode, readVaeReference, VAE_REFERENCE_CHECKPOINT } from '../helpers/vae-reference.js'

const ref = readVaeReference()
// Read synchronously: a top-level await after the hooks below can let tap end the root test before the subtests exist.
const referenceConfigText = readFileSync(join(VAE_REFERENCE_CHECKPOINT, 'config.json'), 'utf8')
const [, latentChannels, latentSize] = ref.latent_shape as [number, number, number, number]
const [, , imageSize] = ref.image_shape as [number, number, number, number]
const TOLERANCE = 1e-4

let root: string
t.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'dc-ae-decoder-'))
})
t.teardown(() => rm(root, { recursive: true, force: true }))

interface Decoder {
  config: DcAeConfig
  session: ort.InferenceSession
  /** Keys the graph read. */
  used: Set<string>
  /** Every decoder.* tensor of the checkpoint, for the plain-loop decoder. */
  tensors: Map<string, Float32Array>
}

/** Builds vae_decoder.onnx from a checkpoint directory into `name` under the temp dir, and loads it. */
async function buildDecoder(checkpointDir: string, size: number, name: string): Promise<Decoder> {
  const config = parseDcAeConfig(await readFile(join(checkpointDir, 'config.json'), 'utf8'))
  const checkpoint = await Checkpoint.open(checkpointDir)
  try {
    const weights = new CheckpointTensors(checkpoint)
    const path = join(root, `${name}.onnx`)
    await buildDcAeDecoder({ g: new GraphBuilder('vae_decoder'), w: weights }, config, size).save(path)
    const tensors = new Map<string, Float32Array>()
    for (const key of checkpoint.keys().filter((k) => k.startsWith('decoder.')))
      tensors.set(key, await checkpoint.read(key))
    const session = await ort.InferenceSession.create(path, { intraOpNumThreads: 1 })
    t.teardown(() => session.release())
    return { config, session, used: weights.used, tensors }
  } finally {
    await checkpoint.close()
  }
}

async function decode(decoder: Decoder, latents: Float32Array, dims: number[]): Promise<ort.Tensor> {
  const out = await decoder.session.run({ latents: new ort.Tensor('float32', latents, dims) })
  return out.image as ort.Tensor
}

function naive(decoder: Decoder, latents: Float32Array, size: number): Float64Array {
  return naiveDcAeDecode(
    decoder.config,
    (key) => {
      const values = decoder.tensors.get(key)
      if (values === undefined) throw new Error(`no tensor ${key}`)
      return values
    },
    latents,
    size,
  )
}

// ─── config.json ───────────────────────────────────────────────────────────

const referenceJson = JSON.parse(referenceConfigText) as Record<string, unknown>
const withFields = (fields: Record<string, unknown>) => JSON.stringify({ ...referenceJson, ...fields })

t.test("the reference config.json parses to the set's decoder", async (t) => {
  const stage = (channels: number, blockType: string, qkvMultiscales: number[]) => ({
    channels,
    layers: 1,
    blockType,
    qkvMultiscales,
    normType: 'rms_norm',
    actFn: 'silu',
  })
  t.same(parseDcAeConfig(referenceConfigText), {
    imageChannels: 3,
    latentChannels: 8,
    attentionHeadDim: 8,
    stages: [
      stage(8, 'ResBlock', []),
      stage(16, 'ResBlock', []),
      stage(32, 'EfficientViTBlock', [5]),
      stage(32, 'EfficientViTBlock', [5]),
    ],
    upsampleBlockType: 'interpolate',
    inShortcut: true,
    convActFn: 'relu',
    scalingFactor: 0.41407,
    upsamplingFactor: 8,
  })
  t.equal(latentSize * 8, imageSize, 'image side = latent side × upsampling factor')
})

t.test(
  'dc-ae-f32c32-sana-1.0 sizes give a 32× decoder; configs saved before diffusers 0.35 get its defaults',
  async (t) => {
    const json = dcAeConfigJson(KELIX_VAE_SIZES)
    const config = parseDcAeConfig(JSON.stringify(json))
    t.equal(config.upsamplingFactor, 32)
    t.same(
      config.stages.map((s) => [s.channels, s.layers, s.blockType, s.qkvMultiscales]),
      [
        [128, 3, 'ResBlock', []],
        [256, 3, 'ResBlock', []],
        [512, 3, 'ResBlock', []],
        [512, 3, 'EfficientViTBlock', [5]],
        [1024, 3, 'EfficientViTBlock', [5]],
        [1024, 3, 'EfficientViTBlock', [5]],
      ],
    )
    t.same(
      [config.latentChannels, config.attentionHeadDim, config.scalingFactor, config.inShortcut, config.convActFn],
      [32, 32, 0.41407, true, 'relu'],
    )
    const old: Record<string, unknown> = { ...json }
    for (const field of ['decoder_in_shortcut', 'decoder_conv_act_fn', 'encoder_out_shortcut']) delete old[field]
    t.same(parseDcAeConfig(JSON.stringify(old)), config, 'without the fields added in 0.35')
  },
)

t.test('per-stage fields take one value or a list; activation names as diffusers reads them', async (t) => {
  const config = parseDcAeConfig(
    withFields({
      decoder_act_fns: ['SiLU', 'swish', 'relu', 'mish'],
      decoder_norm_types: ['rms_norm', 'rms_norm', 'rms_norm', 'rms_norm'],
      decoder_block_types: 'EfficientViTBlock',
      decoder_conv_act_fn: 'GELU',
    }),
  )
  t.same(
    config.stages.map((s) => s.actFn),
    ['silu', 'silu', 'relu', 'mish'],
  )
  t.same(
    config.stages.map((s) => s.blockType),
    ['EfficientViTBlock', 'EfficientViTBlock', 'EfficientViTBlock', 'EfficientViTBlock'],
  )
  t.equal(config.convActFn, 'gelu')
  t.equal(
    parseDcAeConfig(withFields({ upsample_block_type: 'pixel_shuffle', decoder_in_shortcut: false })).upsampleBlockType,
    'pixel_shuffle',
  )
  t.equal(
    parseDcAeConfig(withFields({ decoder_layers_per_block: [0, 1, 1, 1] })).upsamplingFactor,
    8,
    'stage 0 without layers: conv_out upsamples instead',
  )
})

t.test('values the graph does not implement are refused, naming the field and the value', async (t) => {
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    [
      'unknown block type in a list',
      { decoder_block_types: ['ResBlock', 'ResBlock', 'EfficientViTBlock', 'AttnBlock'] },
      /decoder_block_types\[3\] is "AttnBlock"; not implemented/,
    ],
    [
      'unknown block type for every stage',
      { decoder_block_types: 'EfficientViTBlock3D' },
      /decoder_block_types is "EfficientViTBlock3D"; not implemented/,
    ],
    [
      'batch norm',
      { decoder_norm_types: 'batch_norm' },
      /decoder_norm_types is "batch_norm"; not implemented.*"rms_norm"/,
    ],
    [
      'layer norm in one stage',
      { decoder_norm_types: ['rms_norm', 'layer_norm', 'rms_norm', 'rms_norm'] },
      /decoder_norm_types\[1\] is "layer_norm"; not implemented/,
    ],
    ['unknown activation', { decoder_act_fns: 'relu6' }, /decoder_act_fns is "relu6"; not implemented/],
    ['unknown conv activation', { decoder_conv_act_fn: 'tanh' }, /decoder_conv_act_fn is "tanh"; not implemented/],
    ['null activation', { decoder_act_fns: null }, /decoder_act_fns is null; not implemented/],
    [
      'unknown upsampling',
      { upsample_block_type: 'conv_transpose' },
      /upsample_block_type is "conv_transpose"; not implemented/,
    ],
    ['missing upsampling', { upsample_block_type: undefined }, /upsample_block_type is missing/],
    ['non-boolean shortcut', { decoder_in_shortcut: 'yes' }, /decoder_in_shortcut is "yes"/],
    ['not RGB', { in_channels: 4 }, /in_channels is 4; not implemented/],
    ['another class', { _class_name: 'AutoencoderKL' }, /_class_name is "AutoencoderKL"/],
    [
      'a list of the wrong length',
      { decoder_layers_per_block: [1, 1, 1] },
      /decoder_layers_per_block has 3 entries but decoder_block_out_channels has 4/,
    ],
    ['negative layers', { decoder_layers_per_block: [1, -1, 1, 1] }, /decoder_layers_per_block\[1\] is -1/],
    [
      'even aggregation kernel',
      { decoder_qkv_multiscales: [[], [], [4], [5]] },
      /decoder_qkv_multiscales\[2\]\[0\] is 4, expected an odd/,
    ],
    [
      'shortcut that cannot repeat the latents',
      { latent_channels: 7 },
      /decoder_in_shortcut is true but decoder_block_out_channels\[3\] \(32\) is not a multiple of latent_channels \(7\)/,
    ],
    [
      'upsampling shortcut that cannot repeat',
      { decoder_block_out_channels: [8, 16, 32, 24] },
      /decoder stage 2: the upsampling shortcut repeats 24 channels/,
    ],
    [
      'an inner stage without layers between different widths',
      { decoder_layers_per_block: [1, 0, 1, 1] },
      /decoder stage 0 upsamples from 16 channels but receives 32/,
    ],
    ['zero scaling factor', { scaling_factor: 0 }, /scaling_factor is 0, expected a positive number/],
    [
      'fewer channels than a head',
      { attention_head_dim: 64 },
      /decoder stage 3: 32 channels are fewer than attention_head_dim \(64\)/,
    ],
  ]
  for (const [what, fields, message] of cases) {
    t.throws(
      () => parseDcAeConfig(withFields(fields)),
      { name: 'KelixError', code: 'CHECKPOINT_CONFIG_INVALID', message },
      what,
    )
  }
  t.throws(() => parseDcAeConfig('{'), { code: 'CHECKPOINT_CONFIG_INVALID', message: /^config\.json: not valid JSON/ })
  const error = (() => {
    try {
      parseDcAeConfig(withFields({ decoder_norm_types: 'batch_norm' }), 'vae/config.json')
    } catch (err) {
      return err
    }
  })()
  t.ok(error instanceof KelixError && error.fields.file === 'vae/config.json', 'the error names the file')
})

// ─── the reference set ─────────────────────────────────────────────────────

t.test('the reference checkpoint decodes both cases within rel 1e-4, 8-bit pixels within ±1', async (t) => {
  const decoder = await buildDecoder(VAE_REFERENCE_CHECKPOINT, latentSize, 'reference')
  const checkpoint = await Checkpoint.open(VAE_REFERENCE_CHECKPOINT)
  const checkpointKeys = checkpoint.keys()
  await checkpoint.close()
  t.same(
    [...decoder.used].sort(),
    checkpointKeys.filter((k) => k.startsWith('decoder.')).sort(),
    'the graph reads every decoder tensor and no encoder tensor',
  )
  const scale = Math.fround(ref.scaling_factor)
  for (const c of ref.cases) {
    const latents = float32s(c.latents)
    t.equal(latents.length, latentChannels * latentSize * latentSize, `${c.name}: latents`)
    // The graph's first step is this division: float32 latents ÷ float32(scaling_factor), bit for bit.
    t.same(
      Array.from(latents, (v) => Math.fround(v / scale)),
      Array.from(float32s(c.decoder_input)),
      `${c.name}: decoder_input = latents / scaling_factor`,
    )
    const image = await decode(decoder, latents, [1, latentChannels, latentSize, latentSize])
    t.same(image.dims, [1, 3, imageSize, imageSize], `${c.name}: image dims`)
    const pixels = image.data as Float32Array
    const { worst, bound } = relativeError(pixels, float32s(c.image), TOLERANCE)
    t.ok(worst <= bound, `${c.name}: max |Δ| ${worst.toExponential(2)} ≤ ${bound.toExponential(2)}`)
    t.ok(maxUint8Gap(pixels, float32s(c.image_uint8_hwc), imageSize) <= 1, `${c.name}: 8-bit HWC pixels within ±1`)
  }
})

t.test('a batch of two decodes each latent as alone', async (t) => {
  const decoder = await buildDecoder(VAE_REFERENCE_CHECKPOINT, latentSize, 'reference-batch')
  const both = Float32Array.from([...float32s(ref.cases[0]?.latents ?? []), ...float32s(ref.cases[1]?.latents ?? [])])
  const image = await decode(decoder, both, [2, latentChannels, latentSize, latentSize])
  t.same(image.dims, [2, 3, imageSize, imageSize])
  const per = 3 * imageSize * imageSize
  ref.cases.forEach((c, i) => {
    const { worst, bound } = relativeError(
      (image.data as Float32Array).subarray(i * per, (i + 1) * per),
      float32s(c.image),
      TOLERANCE,
    )
    t.ok(worst <= bound, `${c.name} in the batch: max |Δ| ${worst.toExponential(2)} ≤ ${bound.toExponential(2)}`)
  })
})

t.test('the plain-loop decoder reproduces the reference (so it can check other configurations)', async (t) => {
  const decoder = await buildDecoder(VAE_REFERENCE_CHECKPOINT, latentSize, 'reference-naive')
  for (const c of ref.cases) {
    const { worst, bound } = relativeError(
      naive(decoder, float32s(c.latents), latentSize),
      float32s(c.image),
      TOLERANCE,
    )
    t.ok(worst <= bound, `${c.name}: max |Δ| ${worst.toExponential(2)} ≤ ${bound.toExponential(2)}`)
  }
})

// ─── random checkpoints written with the layout ────────────────────────────

/** A small DC-AE-sana: ResBlock stages then EfficientViT stages, nearest upsampling, input shortcut. */
const SMALL_SANA: DcAeSizes = {
  latentChannels: 4,
  blockOutChannels: [4, 8, 16, 16],
  layersPerBlock: [1, 2, 1, 1],
  blockTypes: ['ResBlock', 'ResBlock', 'EfficientViTBlock', 'EfficientViTBlock'],
  qkvMultiscales: [[], [], [5], [5]],
  attentionHeadDim: 4,
  upsampleBlockType: 'interpolate',
  inShortcut: true,
  scalingFactor: 0.5,
}

/**
 * What the reference set does not cover: pixel shuffle, no input shortcut,
 * stage 0 without layers (conv_out upsamples), two aggregation scales, a
 * 2×2 latent stage (H·W ≤ head_dim: quadratic attention), ReLU and Mish.
 */
const OTHER_PATHS: DcAeSizes = {
  latentChannels: 4,
  blockOutChannels: [8, 8, 16, 16],
  layersPerBlock: [0, 1, 2, 1],
  blockTypes: ['ResBlock', 'ResBlock', 'EfficientViTBlock', 'EfficientViTBlock'],
  qkvMultiscales: [[], [], [3, 5], [5]],
  attentionHeadDim: 4,
  upsampleBlockType: 'pixel_shuffle',
  inShortcut: false,
  scalingFactor: 0.41407,
}

/** Writes a random checkpoint of `sizes` (every decoder key of the layout) and returns its directory. */
async function writeRandomVae(
  name: string,
  sizes: DcAeSizes,
  dtype: 'F32' | 'BF16',
  configFields: Record<string, unknown> = {},
): Promise<string> {
  const tensors = seededTensors(dcAeDecoderTensorSpecs(sizes), 7)
  const dir = join(root, name)
  const config = `${JSON.stringify({ ...dcAeConfigJson(sizes), ...configFields }, null, 2)}\n`
  await writeCheckpoint(dir, tensors, { dtype, shardBytes: 64 * 1024, extraFiles: { 'config.json': config } })
  return dir
}

/** Latents in the DiT's space: roughly standard normal (uniform with unit variance). */
function randomLatents(sizes: DcAeSizes, side: number, batch = 1): Float32Array {
  return new SeededWeights(11).random('latents', batch * sizes.latentChannels * side * side, 1)
}

t.test(
  'a random small DC-AE-sana decodes to a finite, unsaturated image equal to the plain-loop decoder',
  async (t) => {
    const side = 3
    const dir = await writeRandomVae('small-sana', SMALL_SANA, 'F32')
    const decoder = await buildDecoder(dir, side, 'small-sana')
    t.same(
      [...decoder.used].sort(),
      dcAeDecoderTensorSpecs(SMALL_SANA)
        .map((s) => s.key)
        .sort(),
      'the graph reads exactly the keys of the layout',
    )
    const latents = randomLatents(SMALL_SANA, side)
    const image = await decode(decoder, latents, [1, SMALL_SANA.latentChannels, side, side])
    t.same(image.dims, [1, 3, side * 8, side * 8])
    const pixels = image.data as Float32Array
    const stats = pixelStats(pixels)
    t.ok(stats.finite, 'every value finite')
    t.ok(stats.insideRange >= 0.6, `${(stats.insideRange * 100).toFixed(0)}% of values inside (−1, 1)`)
    t.ok(stats.std >= 0.1 && stats.std <= 1, `standard deviation ${stats.std.toFixed(3)} in [0.1, 1]`)
    const { worst, bound } = relativeError(pixels, naive(decoder, latents, side), TOLERANCE)
    t.ok(
      worst <= bound,
      `against the plain-loop decoder: max |Δ| ${worst.toExponential(2)} ≤ ${bound.toExponential(2)}`,
    )
  },
)

t.test(
  'pixel shuffle, quadratic attention, no input shortcut, conv_out upsampling, ReLU and Mish (bf16 checkpoint)',
  async (t) => {
    const side = 2
    const dir = await writeRandomVae('other-paths', OTHER_PATHS, 'BF16', {
      decoder_act_fns: ['relu', 'mish', 'silu', 'silu'],
      decoder_conv_act_fn: 'mish',
    })
    const decoder = await buildDecoder(dir, side, 'other-paths')
    t.equal(decoder.config.upsamplingFactor, 8)
    t.same(
      [...decoder.used].sort(),
      dcAeDecoderTensorSpecs(OTHER_PATHS)
        .map((s) => s.key)
        .sort(),
      'the graph reads exactly the keys of the layout',
    )
    const batch = 2
    const latents = randomLatents(OTHER_PATHS, side, batch)
    const image = await decode(decoder, latents, [batch, OTHER_PATHS.latentChannels, side, side])
    t.same(image.dims, [batch, 3, side * 8, side * 8])
    const perLatent = OTHER_PATHS.latentChannels * side * side
    const perImage = 3 * (side * 8) ** 2
    for (let b = 0; b < batch; b++) {
      const expected = naive(decoder, latents.subarray(b * perLatent, (b + 1) * perLatent), side)
      const { worst, bound } = relativeError(
        (image.data as Float32Array).subarray(b * perImage, (b + 1) * perImage),
        expected,
        TOLERANCE,
      )
      t.ok(worst <= bound, `image ${b}: max |Δ| ${worst.toExponential(2)} ≤ ${bound.toExponential(2)}`)
    }
    t.ok(pixelStats(image.data as Float32Array).finite, 'every value finite')
  },
)

t.test('a missing or mis-shaped tensor is refused naming its key, before anything is written', async (t) => {
  const checkpoint = await Checkpoint.open(VAE_REFERENCE_CHECKPOINT)
  t.teardown(() => checkpoint.close())
  const config = parseDcAeConfig(referenceConfigText)
  const wider = { ...config, stages: config.stages.map((s, i) => (i === 3 ? { ...s, channels: 64 } : s)) }
  t.throws(
    () =>
      buildDcAeDecoder({ g: new GraphBuilder('vae_decoder'), w: new CheckpointTensors(checkpoint) }, wider, latentSize),
    {
      code: 'CHECKPOINT_SHAPE_MISMATCH',
      message: /decoder\.conv_in\.weight has shape \[32, 8, 3, 3\], expected \[64, 8, 3, 3\]/,
    },
  )
  const deeper = { ...config, stages: config.stages.map((s, i) => (i === 0 ? { ...s, layers: 2 } : s)) }
  t.throws(
    () =>
      buildDcAeDecoder(
        { g: new GraphBuilder('vae_decoder'), w: new CheckpointTensors(checkpoint) },
        deeper,
        latentSize,
      ),
    { code: 'CHECKPOINT_KEY_MISSING', message: /decoder\.up_blocks\.0\.2\.conv1\.weight/ },
  )
})

/** The largest gap between the server's 8-bit pixels of an NCHW image (the demo's rule, `toRgb`) and the reference's HWC pixels. */
function maxUint8Gap(image: Float32Array, expectedHwc: Float32Array, side: number): number {
  const rgb = toRgb(image, side)
  return rgb.reduce((worst, value, i) => Math.max(worst, Math.abs(value - (expectedHwc[i] as number))), 0)
}

/** Whether every value is finite, the share strictly inside (−1, 1), and the standard deviation. */
function pixelStats(values: Float32Array): { finite: boolean; insideRange: number; std: number } {
  let inside = 0
  let sum = 0
  let sumSquares = 0
  for (const v of values) {
    if (v > -1 && v < 1) inside++
    sum += v
    sumSquares += v * v
  }
  const mean = sum / values.length
  return {
    finite: values.every(Number.isFinite),
    insideRange: inside / values.length,
    std: Math.sqrt(Math.max(0, sumSquares / values.length - mean * mean)),
  }
}
