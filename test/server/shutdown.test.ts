/**
 * The real entry point (src/server/main.ts) in a child process: --help, a bad
 * setting, and SIGTERM during a stream (readiness false at once, new requests
 * 503, the running stream completes, exit code 0).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { EventEmitter, once } from 'node:events'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { tinyModelDir } from '../helpers/tiny-model.js'
import { hello } from '../routes/serve.js'

const root = fileURLToPath(new URL('../../', import.meta.url))
const tsx = import.meta.resolve('tsx/esm')

/** The server in a child process; `waitFor` resolves with the first match of `pattern` in its output (stdout and stderr), or rejects if it exits first. */
function start(
  args: string[] = [],
  env: Record<string, string> = {},
): { child: ChildProcess; output: () => string; waitFor: (pattern: RegExp) => Promise<RegExpExecArray> } {
  const child = spawn(process.execPath, ['--import', tsx, 'src/server/main.ts', ...args], {
    cwd: root,
    env: { ...process.env, KELIX_HOST: '127.0.0.1', KELIX_PORT: '0', KELIX_INTRA_OP_THREADS: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  const seen = new EventEmitter()
  const take = (d: Buffer) => {
    output += d.toString()
    seen.emit('output')
  }
  child.stdout!.on('data', take)
  child.stderr!.on('data', take)
  const waitFor = (pattern: RegExp) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      const check = () => {
        const match = pattern.exec(output)
        if (match === null) return
        seen.off('output', check)
        child.off('exit', exited)
        resolve(match)
      }
      const exited = () => reject(new Error(`exited before ${pattern}: ${output.slice(-500)}`))
      seen.on('output', check)
      child.once('exit', exited)
      check()
    })
  return { child, output: () => output, waitFor }
}

const exitCode = async (child: ChildProcess) => ((await once(child, 'exit')) as [number | null])[0]

t.test('--help lists the settings and exits 0', async (t) => {
  const { child, output } = start(['--help'])
  t.equal(await exitCode(child), 0)
  t.match(output(), /KELIX_DRAIN_TIMEOUT_MS +30000/)
  t.match(output(), /--max-images <value> +KELIX_MAX_IMAGES +8/)
})

t.test('a bad setting stops start-up with a message naming it, exit code 2', async (t) => {
  const { child, output } = start([], { KELIX_MAX_IMAGES: 'many' })
  t.equal(await exitCode(child), 2)
  t.equal(output(), 'kelix-serve: KELIX_MAX_IMAGES must be an integer in 0..1024, got "many"\n')
})

t.test('SIGTERM during a stream: not ready at once, new requests 503, the stream completes, exit 0', async (t) => {
  await tinyModelDir()
  const { child, output, waitFor } = start([], { KELIX_DRAIN_TIMEOUT_MS: '20000' })
  t.teardown(() => void child.kill('SIGKILL'))
  const base = (await waitFor(/"msg":"Server listening at (http:\/\/127\.0\.0\.1:\d+)"/))[1]
  t.ok(base, 'the server started')
  const post = (body: unknown) =>
    fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })

  const res = await post(hello({ stream: true, max_tokens: 600, temperature: 0 }))
  t.equal(res.status, 200)
  const reader = res.body!.getReader()
  let body = new TextDecoder().decode((await reader.read()).value)
  child.kill('SIGTERM')
  // The server logs this line and starts draining in one synchronous step.
  await waitFor(/"msg":"shutting down: draining"/)

  const ready = await fetch(`${base}/health/ready`)
  t.equal(ready.status, 503)
  const refused = await post(hello())
  t.equal(refused.status, 503)
  t.match(await refused.json(), { error: { code: 'server_shutting_down' } })

  for (;;) {
    const { value, done } = await reader.read()
    if (done) break
    body += new TextDecoder().decode(value)
  }
  t.match(body, /"finish_reason":"length"[^\n]*\n\ndata: \[DONE\]\n\n$/, 'the running stream finished normally')
  t.equal(await exitCode(child), 0)
  t.match(output(), /"msg":"shutting down: draining"/)
  t.match(output(), /"msg":"shut down"/)
})
