/**
 * `kelix-serve bench` where the benchmarks cannot run (an installed package:
 * no bench/ sources, no tsx): one line saying what it needs, exit 1. The CLI's
 * sources are copied to a directory with neither, and run from there.
 */
import { execFile } from 'node:child_process'
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'

const cli = fileURLToPath(new URL('../../src/cli/', import.meta.url))
const tsx = import.meta.resolve('tsx/esm')
const NEEDS = 'kelix-serve: bench runs only from a source checkout with its dev dependencies (git clone, then npm ci)'

async function benchIn(root: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const failed = await promisify(execFile)(
    process.execPath,
    ['--import', tsx, join(root, 'src/cli/kelix-serve.ts'), 'bench', '--quick'],
    { cwd: root },
  ).then(
    () => ({ code: 0, stdout: '', stderr: 'it ran' }),
    (err: { code: number; stdout: string; stderr: string }) => err,
  )
  return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr }
}

t.test('without bench/run.ts, and then without tsx, bench says what it needs in one line, exit 1', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'kelix-installed-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  await cp(cli, join(root, 'src/cli'), { recursive: true })
  await writeFile(join(root, 'package.json'), '{ "type": "module" }\n')

  t.same(await benchIn(root), { code: 1, stdout: '', stderr: `${NEEDS}: ${join(root, 'bench/run.ts')} is not there\n` })

  await mkdir(join(root, 'bench'))
  await writeFile(join(root, 'bench/run.ts'), '/**\n * the benchmarks\n */\n')
  t.same(await benchIn(root), { code: 1, stdout: '', stderr: `${NEEDS}: tsx is not installed\n` })
})
