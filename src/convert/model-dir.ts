/**
 * A model directory appears whole or not at all: it is written into a hidden
 * staging directory beside it, then renamed into place. An interrupted write
 * leaves no directory that looks loadable (and the converter writes config.json
 * last, so not even the staging directory does).
 */
import { existsSync } from 'node:fs'
import { mkdir, rename, rm } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'

/**
 * Runs `write` on a fresh staging directory beside `dir`, then renames it to
 * `dir`. With `replace`, whatever is at `dir` is removed first; without it, a
 * model another process put there first (same name, finished earlier) is kept.
 */
export async function writeModelDirAtomically<T>(
  dir: string,
  write: (staging: string) => Promise<T>,
  opts: { replace: boolean },
): Promise<T> {
  await mkdir(dirname(dir), { recursive: true })
  const staging = join(dirname(dir), `.${basename(dir)}.converting-${process.pid}-${Date.now()}`)
  await mkdir(staging)
  try {
    const result = await write(staging)
    if (opts.replace) await rm(dir, { recursive: true, force: true })
    if (opts.replace || !existsSync(join(dir, 'config.json'))) {
      await rename(staging, dir).catch((err: NodeJS.ErrnoException) => {
        if (opts.replace || err.code !== 'ENOTEMPTY') throw err
      })
    }
    return result
  } finally {
    await rm(staging, { recursive: true, force: true })
  }
}
