/**
 * `kelix-serve serve` (and `npm start`, which runs it) on a model directory
 * it cannot use: one line on stderr naming the directory and what is wrong,
 * no stack trace, exit 1.
 */
import { execFile } from 'node:child_process'
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const root = fileURLToPath(new URL('../../', import.meta.url))
const tsx = import.meta.resolve('tsx/esm')

interface Outcome {
  code: number
  stdout: string
  stderr: string
}

interface RunOptions {
  env?: NodeJS.ProcessEnv
  /** Run as this user (the tests run as root): through `env -i`, so that no test runner hooks follow it. */
  uid?: number
}

function run(args: string[], { env = process.env, uid }: RunOptions = {}): Promise<Outcome> {
  const [file, argv] =
    uid === undefined
      ? [process.execPath, args]
      : ['env', ['-i', `PATH=${process.env.PATH ?? ''}`, process.execPath, ...args]]
  const ids = uid === undefined ? {} : { uid, gid: uid }
  return new Promise((resolve, reject) => {
    execFile(file, argv, { cwd: root, encoding: 'utf8', env, ...ids }, (err, stdout, stderr) => {
      const code = err === null ? 0 : (err as { code?: unknown }).code
      if (typeof code !== 'number') reject(err ?? new Error('no exit code'))
      else resolve({ code, stdout, stderr })
    })
  })
}

const serve = (args: string[], options: RunOptions = {}) =>
  run(['--import', tsx, 'src/cli/kelix-serve.ts', 'serve', ...args, '--host', '127.0.0.1', '--port', '0'], options)

t.test('KELIX_MODEL_DIR naming a directory that does not exist: one line, exit 1', async (t) => {
  const parent = await mkdtemp(join(tmpdir(), 'kelix-cli-'))
  t.teardown(() => rm(parent, { recursive: true, force: true }))
  const missing = join(parent, 'no-such-model')
  t.same(await serve([], { env: { ...process.env, KELIX_MODEL_DIR: missing } }), {
    code: 1,
    stdout: '',
    stderr: `kelix-serve: MODEL_DIR_MISSING: ${missing} is not a directory\n`,
  })
})

// Permissions bind everyone but root: as root, the server runs as nobody, who must be able to read this checkout.
const user: RunOptions = process.getuid?.() === 0 ? { uid: 65534 } : {}
const entry = JSON.stringify(join(root, 'src/cli/kelix-serve.ts'))
const canRun = (await run(['-e', `require('node:fs').accessSync(${entry})`], user)).code === 0

t.test(
  'a model directory without permission to open it: one line naming it, exit 1',
  { skip: canRun ? false : 'running as root, and user nobody cannot read this checkout' },
  async (t) => {
    const parent = await mkdtemp(join(tmpdir(), 'kelix-cli-'))
    await chmod(parent, 0o755)
    const dir = join(parent, 'model')
    t.teardown(async () => {
      await chmod(dir, 0o755).catch(() => {})
      await rm(parent, { recursive: true, force: true })
    })
    await mkdir(dir)
    for (const [mode, what] of [
      [0o000, 'no permissions'],
      [0o644, 'read but no search permission'],
    ] as const) {
      await chmod(dir, mode)
      const stderr = `kelix-serve: cannot read the model directory ${dir}: permission denied (EACCES)\n`
      t.same(await serve([dir], user), { code: 1, stdout: '', stderr }, what)
    }
  },
)
