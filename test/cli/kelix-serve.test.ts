/**
 * The `kelix-serve` binary and the older entry points that share its
 * commands: exact output and exit codes for help and for the mistakes a
 * person makes on a command line. Most cases run the binary's command in this
 * process (what src/cli/kelix-serve.ts runs, with its console captured); the
 * binary itself and the older entry points run as processes (through tsx, as
 * the other process tests run sources).
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { format } from 'node:util'
import t from 'tap'
import { runCommand } from '../../src/cli/command.js'
import { kelixServe as kelixServeCommand } from '../../src/cli/dispatch.js'
import { helpText as serverHelp } from '../../src/server/config.js'

const root = fileURLToPath(new URL('../../', import.meta.url))
const tsx = import.meta.resolve('tsx/esm')

interface Outcome {
  code: number
  stdout: string
  stderr: string
}

function run(entry: string, args: string[]): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', tsx, entry, ...args], { cwd: root }, (err, stdout, stderr) => {
      const code = err === null ? 0 : (err as { code?: unknown }).code
      if (typeof code !== 'number') reject(err ?? new Error('no exit code'))
      else resolve({ code, stdout, stderr })
    })
  })
}

const binary = (...args: string[]) => run('src/cli/kelix-serve.ts', args)

/** The binary's command in this process: its exit code, and what it printed (console.log to stdout, console.error to stderr). */
async function kelixServe(...args: string[]): Promise<Outcome> {
  const stdout: string[] = []
  const stderr: string[] = []
  const { log, error } = console
  console.log = (...parts: unknown[]) => void stdout.push(`${format(...parts)}\n`)
  console.error = (...parts: unknown[]) => void stderr.push(`${format(...parts)}\n`)
  try {
    const code = await runCommand(kelixServeCommand, args, { prog: 'kelix-serve', usage: 'kelix-serve' })
    return { code, stdout: stdout.join(''), stderr: stderr.join('') }
  } finally {
    console.log = log
    console.error = error
  }
}
const usageError = (message: string): Outcome => ({ code: 2, stdout: '', stderr: `kelix-serve: ${message}\n` })

const TOP_HELP = `Usage: kelix-serve <subcommand> [args]

Subcommands:
  serve       serve a model directory over the OpenAI-compatible HTTP API
  convert     convert a Kelix checkpoint into a model directory
  build-tiny  write the tiny Kelix model (the embedded default)
  bench       run the benchmarks (a source checkout with dev dependencies only)

Flags:
  -h, --help     this text
  -v, --version  the version

kelix-serve <subcommand> --help shows a subcommand's flags.
`

t.test('the binary: --help lists the subcommands and exits 0; a usage error exits 2', async (t) => {
  t.same(await binary('--help'), { code: 0, stdout: TOP_HELP, stderr: '' })
  t.same(await binary('srve'), usageError('unknown subcommand srve (did you mean serve?)'))
})

t.test('--help lists the subcommands and exits 0', async (t) => {
  t.same(await kelixServe('--help'), { code: 0, stdout: TOP_HELP, stderr: '' })
  t.same(await kelixServe('-h'), { code: 0, stdout: TOP_HELP, stderr: '' })
})

t.test('no subcommand prints the same help and exits 0, as vllm does', async (t) => {
  t.same(await kelixServe(), { code: 0, stdout: TOP_HELP, stderr: '' })
})

t.test('--version prints the package version', async (t) => {
  const { version } = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version: string }
  t.same(await kelixServe('--version'), { code: 0, stdout: `${version}\n`, stderr: '' })
})

t.test('serve --help is the server settings table under its own usage line', async (t) => {
  const stdout = `${serverHelp('Usage: kelix-serve serve [MODEL_DIR] [flags]\nMODEL_DIR is the same as --model-dir.')}\n`
  t.same(await kelixServe('serve', '--help'), { code: 0, stdout, stderr: '' })
  t.match(stdout, /--max-num-seqs <value> +KELIX_MAX_NUM_SEQS +32 /)
  t.match(stdout, /--model-dir <value> +KELIX_MODEL_DIR /)
})

t.test('the other subcommands print their own help', async (t) => {
  const convert = await kelixServe('convert', '--help')
  t.match(convert, { code: 0, stderr: '' })
  t.ok(
    convert.stdout.startsWith(
      'Usage: kelix-serve convert --from CHECKPOINT_DIR [--dit DIT_DIR --vae VAE_DIR] --out MODEL_DIR [options]\n\n',
    ),
  )
  t.match(convert.stdout, /\n {2}--precision fp32\|int8\|int4 {7}the LLM's linear layers/)

  const buildTiny = await kelixServe('build-tiny', '-h')
  t.match(buildTiny, { code: 0, stderr: '' })
  t.ok(buildTiny.stdout.startsWith('Usage: kelix-serve build-tiny [--out DIR] [--seed N]\n\n'))

  const bench = await kelixServe('bench', '--help')
  t.match(bench, { code: 0, stderr: '' })
  t.ok(
    bench.stdout.startsWith(
      'Usage: kelix-serve bench [flags]\n\n`npm run bench [-- --mode engine|serve|all] [--quick] [--rounds N]`: runs the benchmarks,\n',
    ),
  )
})

t.test('an unknown flag on serve names the closest one, exit 2', async (t) => {
  t.same(
    await kelixServe('serve', '--max-num-seq', '8'),
    usageError('unknown flag --max-num-seq (did you mean --max-num-seqs?)'),
  )
  t.same(await kelixServe('serve', 'some-dir', '--prot=80'), usageError('unknown flag --prot (did you mean --port?)'))
  t.same(await kelixServe('serve', '--bogus'), usageError('unknown flag --bogus (see --help)'))
})

t.test('serve takes the model directory first and only once', async (t) => {
  t.same(await kelixServe('serve', 'a', 'b'), usageError('unexpected argument b: give MODEL_DIR first, then flags'))
  t.same(
    await kelixServe('serve', 'a', '--model-dir', 'b'),
    usageError('the model directory is given twice: a and --model-dir; give one'),
  )
})

t.test('a bad setting value is one line naming it, exit 2', async (t) => {
  t.same(
    await kelixServe('serve', '--max-num-seqs', 'many'),
    usageError('--max-num-seqs (KELIX_MAX_NUM_SEQS) must be an integer in 1..4096, got "many"'),
  )
})

t.test('serve with a missing model directory says so in one line, exit 1', async (t) => {
  const parent = await mkdtemp(join(tmpdir(), 'kelix-cli-'))
  t.teardown(() => rm(parent, { recursive: true, force: true }))
  const missing = join(parent, 'no-such-model')
  t.same(await binary('serve', missing, '--host', '127.0.0.1', '--port', '0'), {
    code: 1,
    stdout: '',
    stderr: `kelix-serve: MODEL_DIR_MISSING: ${missing} is not a directory\n`,
  })
})

t.test('an unknown subcommand names the closest one, exit 2', async (t) => {
  t.same(await kelixServe('srve'), usageError('unknown subcommand srve (did you mean serve?)'))
  t.same(await kelixServe('build-tny'), usageError('unknown subcommand build-tny (did you mean build-tiny?)'))
  t.same(await kelixServe('quantize'), usageError('unknown subcommand quantize (see kelix-serve --help)'))
})

t.test(
  'a flag before the subcommand: a server flag is pointed to serve, others get the closest top-level flag',
  async (t) => {
    t.same(await kelixServe('--port', '80'), usageError('--port is a flag of serve: kelix-serve serve --port ...'))
    t.same(await kelixServe('--hlep'), usageError('unknown flag --hlep (did you mean --help?)'))
  },
)

t.test('convert and build-tiny name the closest flag too, exit 2', async (t) => {
  t.same(
    await kelixServe('convert', '--from', 'x', '--outt', 'y'),
    usageError('unknown flag --outt (did you mean --out?)'),
  )
  t.same(await kelixServe('convert', '--from', 'x', '-q'), usageError('unknown flag -q (see --help)'))
  t.same(await kelixServe('build-tiny', '--sed', '1'), usageError('unknown flag --sed (did you mean --seed?)'))
  t.same(await kelixServe('build-tiny', '--seed', 'x'), usageError('--seed must be an integer, got x'))
})

t.test('the older entry points give the same messages under their own names', async (t) => {
  t.same(
    await run('src/server/main.ts', ['--max-num-seq', '8']),
    usageError('unknown flag --max-num-seq (did you mean --max-num-seqs?)'),
  )
  t.same(await run('src/convert/cli.ts', ['--from', 'x', '--outt', 'y']), {
    code: 2,
    stdout: '',
    stderr: 'convert: unknown flag --outt (did you mean --out?)\n',
  })
  t.same(await run('src/builder/cli.ts', ['--sed', '1']), {
    code: 2,
    stdout: '',
    stderr: 'build:model: unknown flag --sed (did you mean --seed?)\n',
  })
})

t.test('package.json installs the binary, whose source starts with a node shebang', async (t) => {
  const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { bin: Record<string, string> }
  t.same(pkg.bin, { 'kelix-serve': 'dist/cli/kelix-serve.js' })
  const source = await readFile(join(root, 'src/cli/kelix-serve.ts'), 'utf8')
  t.ok(source.startsWith('#!/usr/bin/env node\n'))
})
