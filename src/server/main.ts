/**
 * `npm start` and `node dist/server/main.js` (the container images' command):
 * the server, as `kelix-serve serve` runs it (src/cli/serve.ts has the start-up
 * and the shutdown order).
 */
import { runCommand } from '../cli/command.js'
import { serve } from '../cli/serve.js'

process.exitCode = await runCommand(serve, process.argv.slice(2), {
  prog: 'kelix-serve',
  usage: 'node dist/server/main.js',
})
