/**
 * `npm run build:model [-- --out DIR] [--seed N]` and `node dist/builder/cli.js`
 * (the container build): the tiny model builder, as `kelix-serve build-tiny`
 * runs it (src/cli/build-tiny.ts).
 */
import { buildTiny } from '../cli/build-tiny.js'
import { runCommand } from '../cli/command.js'

process.exitCode = await runCommand(buildTiny, process.argv.slice(2), {
  prog: 'build:model',
  usage: 'npm run build:model --',
})
