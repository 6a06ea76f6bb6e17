/**
 * `npm run convert -- --from CHECKPOINT_DIR --out MODEL_DIR [options]` and
 * `node dist/convert/cli.js ...`: the converter, as `kelix-serve convert` runs
 * it (src/cli/convert.ts has the flags and --help).
 */
import { runCommand } from '../cli/command.js'
import { convert } from '../cli/convert.js'

process.exitCode = await runCommand(convert, process.argv.slice(2), { prog: 'convert', usage: 'npm run convert --' })
