/**
 * Bad checkpoints are refused before anything is written, each with a stable
 * code and a one-line message naming the file, key or field; an interrupted
 * conversion leaves no model directory behind.
 */
import { execFile } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { writeTinyCheckpoint } from '../../src/builder/tiny-checkpoint.js'
import { convertCheckpoint } from '../../src/convert/convert.js'
import type { Progress } from '../../src/convert/progress.js'

type Json = Record<string, Record<string, unknown>>

/** A tiny checkpoint in the published layout, `edit`ed, and a path for the output; removed when `t` ends. */
async function checkpoint(
  t: Test,
  edit: (dir: string) => Promise<void> = async () => {},
): Promise<{ from: string; out: string }> {
  const root = await mkdtemp(join(tmpdir(), 'kelix-convert-errors-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  const from = join(root, 'checkpoint')
  await writeTinyCheckpoint(from, 1)
  await edit(from)
  return { from, out: join(root, 'out', 'model') }
}

async function editJson(file: string, change: (json: Json) => void): Promise<void> {
  const json = JSON.parse(await readFile(file, 'utf8')) as Json
  change(json)
  await writeFile(file, JSON.stringify(json))
}

const editConfig = (change: (json: Json) => void) => (dir: string) => editJson(join(dir, 'config.json'), change)

/** Converting must fail with `code` and a message matching `message`, and leave no output directory. */
async function refused(
  t: Test,
  paths: { from: string; out: string },
  code: string,
  message: RegExp,
  file?: string,
): Promise<void> {
  await t.rejects(convertCheckpoint(paths), { code, message, ...(file === undefined ? {} : { fields: { file } }) })
  t.notOk(existsSync(paths.out), 'no output directory')
  t.same(
    (await readdir(join(paths.out, '..'))).filter((n) => !n.startsWith('model')),
    [],
    'no staging directory left',
  )
}

t.test('a config of another class is refused by its __class__', async (t) => {
  const paths = await checkpoint(
    t,
    editConfig((c) => (c.__class__ = 'SanaConfig' as never)),
  )
  await refused(
    t,
    paths,
    'CHECKPOINT_CONFIG_INVALID',
    /__class__ is "SanaConfig", expected "KeyeARConfig"/,
    'config.json',
  )
})

t.test('a flag whose other value the graphs do not implement is refused by name', async (t) => {
  const paths = await checkpoint(
    t,
    editConfig((c) => (((c.tokenizer_config as Json).vision_config as Record<string, unknown>).hidden_act = 'gelu')),
  )
  await refused(
    t,
    paths,
    'CHECKPOINT_CONFIG_INVALID',
    /tokenizer_config\.vision_config\.hidden_act is "gelu"; the converter implements only "gelu_pytorch_tanh"/,
    'config.json',
  )
})

t.test('a key missing from the index is named', async (t) => {
  const paths = await checkpoint(t, (dir) =>
    editJson(
      join(dir, 'model.safetensors.index.json'),
      (index) => delete index.weight_map!['model.model.layers.2.mlp.w3.weight'],
    ),
  )
  await refused(t, paths, 'CHECKPOINT_KEY_MISSING', /model\.model\.layers\.2\.mlp\.w3\.weight/)
})

t.test('a tensor whose shape disagrees with the config names the key, its shard and both shapes', async (t) => {
  const paths = await checkpoint(
    t,
    editConfig((c) => (c.qwen_config!.intermediate_dim = 700)),
  )
  await t.rejects(convertCheckpoint(paths), {
    code: 'CHECKPOINT_SHAPE_MISMATCH',
    fields: { file: /^model-\d{5}-of-\d{5}\.safetensors$/ },
    message:
      /model\.model\.layers\.0\.mlp\.w1\.weight has shape \[768, 256\], expected \[700, 256\] \(.*intermediate_dim 700/,
  })
  t.notOk(existsSync(paths.out))
})

t.test('a truncated shard is named before anything is written', async (t) => {
  let shard = ''
  const paths = await checkpoint(t, async (dir) => {
    shard = (await readdir(dir)).filter((n) => n.endsWith('.safetensors')).sort()[1] as string
    await truncate(join(dir, shard), (await stat(join(dir, shard))).size - 100)
  })
  await refused(t, paths, 'CHECKPOINT_SHARD_INVALID', /ends at byte/, shard)
})

t.test('special ids of the config are checked against the tokenizer', async (t) => {
  const paths = await checkpoint(
    t,
    editConfig((c) => (c.qwen_config!.eos_token_id = 501)),
  )
  await refused(
    t,
    paths,
    'CHECKPOINT_TOKENIZER_MISMATCH',
    /qwen_config\.eos_token_id is 501, but the tokenizer gives "<\|im_end\|>" id 502/,
    'tokenizer.json',
  )
})

t.test('a missing tokenizer file is named', async (t) => {
  const paths = await checkpoint(t, (dir) => rm(join(dir, 'tokenizer_config.json')))
  await refused(t, paths, 'CHECKPOINT_FILE_MISSING', /not found/, 'tokenizer_config.json')
})

t.test('an existing output directory is kept unless overwriting is asked for', async (t) => {
  const paths = await checkpoint(t)
  await mkdir(paths.out, { recursive: true })
  await writeFile(join(paths.out, 'keep.txt'), 'mine')
  await t.rejects(convertCheckpoint(paths), { code: 'CONVERT_OUTPUT_EXISTS' })
  t.equal(await readFile(join(paths.out, 'keep.txt'), 'utf8'), 'mine')
  await convertCheckpoint({ ...paths, overwrite: true })
  t.ok(existsSync(join(paths.out, 'config.json')))
  t.notOk(existsSync(join(paths.out, 'keep.txt')))
})

t.test('a conversion that fails while writing leaves neither the output nor its staging directory', async (t) => {
  const paths = await checkpoint(t)
  const parent = join(paths.out, '..')
  let weights = 0
  let midway: { staging: string[]; hasConfig: boolean } | undefined
  const progress: Progress = {
    stage() {},
    done() {},
    weight() {
      if (++weights < 20) return
      // Mid-write: the staging directory holds graphs but not config.json, which is written last.
      const staging = readdirSync(parent)
      midway = { staging, hasConfig: staging.some((name) => existsSync(join(parent, name, 'config.json'))) }
      throw new Error('interrupted')
    },
  }
  await t.rejects(convertCheckpoint({ ...paths, progress }), { message: 'interrupted' })
  t.match(midway, { staging: [/^\.model\.converting-/], hasConfig: false })
  t.same(await readdir(parent), [], 'nothing left beside the output')
})

t.test('the command line refuses an unknown flag in one line, exit 2', async (t) => {
  const root = fileURLToPath(new URL('../../', import.meta.url))
  const run = promisify(execFile)
  const failed = await run(
    process.execPath,
    ['--import', import.meta.resolve('tsx/esm'), 'src/convert/cli.ts', '--from', 'x', '--bogus'],
    { cwd: root },
  ).catch((err: { code: number; stderr: string }) => err)
  t.match(failed, { code: 2 })
  t.equal((failed as { stderr: string }).stderr, 'convert: unknown flag --bogus (see --help)\n')
  t.equal((failed as { stderr: string }).stderr.trim().split('\n').length, 1)
})

t.test('the command line refuses a malformed image-generation setting in one line, exit 2', async (t) => {
  const root = fileURLToPath(new URL('../../', import.meta.url))
  const run = promisify(execFile)
  for (const [flag, value, message] of [
    ['--image-grid', '0', /^convert: --image-grid must be a positive integer, got 0$/],
    ['--steps', '2.5', /^convert: --steps must be a positive integer, got 2\.5$/],
    ['--guidance', 'high', /^convert: --guidance must be a positive number, got high$/],
  ] as const) {
    const failed = await run(
      process.execPath,
      ['--import', import.meta.resolve('tsx/esm'), 'src/convert/cli.ts', '--from', 'x', '--out', 'y', flag, value],
      { cwd: root },
    ).catch((err: { code: number; stderr: string }) => err)
    t.match(failed, { code: 2 }, flag)
    t.match((failed as { stderr: string }).stderr.trim(), message, flag)
  }
})

t.test('the command line refuses a precision it does not implement in one line naming the flag, exit 2', async (t) => {
  const root = fileURLToPath(new URL('../../', import.meta.url))
  const run = promisify(execFile)
  for (const [flag, value, message] of [
    ['--precision', 'int3', /^convert: --precision must be fp32, int8 or int4, got int3$/],
    ['--lm-head-precision', 'fp16', /^convert: --lm-head-precision must be fp32, int8 or int4, got fp16$/],
    ['--embedding-precision', 'int8', /^convert: --embedding-precision must be fp32 or fp16, got int8$/],
  ] as const) {
    const failed = await run(
      process.execPath,
      ['--import', import.meta.resolve('tsx/esm'), 'src/convert/cli.ts', '--from', 'x', '--out', 'y', flag, value],
      { cwd: root },
    ).catch((err: { code: number; stderr: string }) => err)
    t.match(failed, { code: 2 }, flag)
    t.match((failed as { stderr: string }).stderr.trim(), message, flag)
  }
})
