/**
 * The image decoder's checkpoints (Kelix-DiT, DC-AE) are found, checked against
 * each other and the LLM, and refused before anything is written, each with a
 * stable code and a message naming the file and field.
 */
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import {
  writeTinyCheckpoint,
  writeTinyDitCheckpoint,
  writeTinyVaeCheckpoint,
} from '../../src/builder/tiny-checkpoint.js'
import { convertCheckpoint, type ConvertOptions } from '../../src/convert/convert.js'

type Json = Record<string, unknown>

/** The tiny LLM checkpoint with its DiT and VAE bundled in dit/ and vae/, and an output path; removed when `t` ends. */
async function bundled(t: Test): Promise<{ from: string; out: string; dit: string; vae: string }> {
  const root = await mkdtemp(join(tmpdir(), 'kelix-image-decoder-errors-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  const from = join(root, 'checkpoint')
  await writeTinyCheckpoint(from, 1)
  await writeTinyDitCheckpoint(join(from, 'dit'), 1)
  await writeTinyVaeCheckpoint(join(from, 'vae'), 1)
  return { from, out: join(root, 'out', 'model'), dit: join(from, 'dit'), vae: join(from, 'vae') }
}

async function editJson(file: string, change: (json: Json) => void): Promise<void> {
  const json = JSON.parse(await readFile(file, 'utf8')) as Json
  change(json)
  await writeFile(file, JSON.stringify(json))
}

/** Converting must fail with `code`, a message matching `message` and `file`, and leave no output or staging directory. */
async function refused(t: Test, options: ConvertOptions, code: string, message: RegExp, file?: string): Promise<void> {
  await t.rejects(convertCheckpoint(options), { code, message, ...(file === undefined ? {} : { fields: { file } }) })
  t.notOk(existsSync(options.out), 'no output directory')
  t.same(
    existsSync(join(options.out, '..')) ? await readdir(join(options.out, '..')) : [],
    [],
    'no staging directory left',
  )
}

t.test(
  'a DiT and VAE bundled in dit/ and vae/ are found and converted; the summary names what they leave unread',
  async (t) => {
    const paths = await bundled(t)
    const summary = await convertCheckpoint({ from: paths.from, out: paths.out, imageGeneration: { grid: 6 } })
    t.same(summary.graphs.map((g) => g.file).slice(4), ['dit.onnx', 'vae_decoder.onnx'])
    t.match(summary.config.image_generation, {
      grid: 6,
      condition_length: 96,
      latent_channels: 8,
      latent_size: 8,
      image_size: 64,
      steps: 50,
      shift: 3,
      guidance: 1,
    })
    t.same(
      summary.unused.filter((u) => u.family.startsWith('dit: ') || u.family.startsWith('vae: ')).map((u) => u.family),
      ['dit: pos_embed'],
    )
  },
)

t.test('without --image-grid the grid is Kelix 18, or the largest whose span fits the condition', async (t) => {
  const paths = await bundled(t)
  const summary = await convertCheckpoint({ from: paths.from, out: paths.out })
  // 96 positions: a 7×7 grid spans 2 + 7·(5 + 7) = 86, an 8×8 one 106.
  t.equal(summary.config.image_generation?.grid, 7)
})

t.test('a grid whose span exceeds the condition length is refused, naming the largest that fits', async (t) => {
  const paths = await bundled(t)
  await refused(
    t,
    { from: paths.from, out: paths.out, imageGeneration: { grid: 9 } },
    'CONVERT_OPTION_INVALID',
    /--image-grid 9 writes a 128-position span, longer than the DiT's condition length 96 .*the largest grid that fits is 7/,
  )
})

t.test('a DiT flag the graph does not implement is refused by name', async (t) => {
  const paths = await bundled(t)
  await editJson(join(paths.dit, 'config.json'), (c) => (c.use_cross_attn_rope = true))
  await refused(
    t,
    paths,
    'CHECKPOINT_CONFIG_INVALID',
    /use_cross_attn_rope is true: not implemented/,
    join(paths.dit, 'config.json'),
  )
})

t.test('a VAE block type the graph does not implement is refused by name', async (t) => {
  const paths = await bundled(t)
  await editJson(join(paths.vae, 'config.json'), (c) => ((c.decoder_block_types as string[])[2] = 'AttnBlock'))
  await refused(t, paths, 'CHECKPOINT_CONFIG_INVALID', /decoder_block_types.*AttnBlock/, join(paths.vae, 'config.json'))
})

t.test('a DiT conditioned on another hidden size than the LLM is refused, naming both', async (t) => {
  const paths = await bundled(t)
  await editJson(join(paths.dit, 'config.json'), (c) => (c.connector_channels = 128))
  await refused(
    t,
    paths,
    'CHECKPOINT_CONFIG_INVALID',
    /connector_channels is 128, but the LLM's hidden size \(qwen_config\.embed_dim\) is 256/,
    join(paths.dit, 'config.json'),
  )
})

t.test("a VAE whose latent channels are not the DiT's is refused, naming both", async (t) => {
  const paths = await bundled(t)
  await editJson(join(paths.vae, 'config.json'), (c) => (c.latent_channels = 4))
  await refused(
    t,
    paths,
    'CHECKPOINT_CONFIG_INVALID',
    /latent_channels is 4, but the DiT's in_channels is 8/,
    join(paths.vae, 'config.json'),
  )
})

t.test('a DiT without a VAE (or the reverse) is refused: image generation needs both', async (t) => {
  const paths = await bundled(t)
  await rm(paths.vae, { recursive: true })
  await refused(
    t,
    { from: paths.from, out: paths.out },
    'CONVERT_OPTION_INVALID',
    /a DiT checkpoint is given but no VAE \(--vae\)/,
  )
  await refused(
    t,
    { from: paths.from, out: paths.out, vae: join(paths.from, 'nowhere') },
    'CHECKPOINT_FILE_MISSING',
    /config\.json: not found/,
  )
})

t.test('a DiT tensor whose shape disagrees with its config is named before anything is written', async (t) => {
  const paths = await bundled(t)
  await editJson(join(paths.dit, 'config.json'), (c) => (c.mlp_ratio = 3))
  await refused(t, paths, 'CHECKPOINT_SHAPE_MISMATCH', /blocks\.0\.mlp\.inverted_conv\.conv\.weight/)
})
