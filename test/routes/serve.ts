/** Shared set-up for HTTP tests: an engine (the tiny model in a worker, or a scripted fake), and a fresh app per test on a real port. */
import type { Test } from 'tap'
import OpenAI from 'openai'
import type { EngineClient } from '../../src/batching/client-types.js'
import type { EngineClientOptions, LocalEngineClient } from '../../src/batching/http-thread/engine-client.js'
import { buildApp, type AppOptions } from '../../src/server/app.js'
import { testProviders } from '../helpers/test-providers.js'

export const MODEL = 'kelix-tiny'

/** The tiny model in a real engine worker; closed when `t` ends. Imported lazily: tests on the scripted engine load no engine code. */
export async function tinyEngine(t: Test, options: Partial<EngineClientOptions> = {}): Promise<LocalEngineClient> {
  const [{ startEngine }, { tinyModelDir }] = await Promise.all([
    import('../../src/batching/http-thread/engine-client.js'),
    import('../helpers/tiny-model.js'),
  ])
  const engine = await startEngine({
    modelDir: await tinyModelDir(),
    intraOpThreads: 1,
    executionProviders: testProviders(),
    ...options,
  })
  t.teardown(() => engine.close())
  return engine
}

export interface Served {
  base: string
  app: Awaited<ReturnType<typeof buildApp>>
  openai: OpenAI
  /** POSTs a JSON body (or a raw string) to /v1/chat/completions. */
  post(body: unknown, headers?: Record<string, string>): Promise<Response>
}

/** A fresh app on 127.0.0.1:<random port>, closed at the end of `t`. */
export async function serve(t: Test, engine: EngineClient, options: Partial<AppOptions> = {}): Promise<Served> {
  const app = await buildApp({
    logger: false,
    engine,
    model: { id: MODEL, aliases: ['kelix'], created: 1700000000 },
    systemFingerprint: 'fp_test',
    ...options,
  })
  t.teardown(async () => {
    // The test is over: a connection fetch opened and never used (it does after an aborted stream) would hold close()
    // for its 4 s keep-alive.
    const closed = app.close()
    app.server.closeAllConnections()
    await closed
  })
  const base = await app.listen({ host: '127.0.0.1', port: 0 })
  const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused', maxRetries: 0 })
  const post = (body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    })
  return { base, app, openai, post }
}

export const hello = (extra: object = {}) => ({
  model: MODEL,
  messages: [{ role: 'user', content: 'Hello' }],
  max_tokens: 4,
  ...extra,
})

/** Splits an SSE body into its events (comments included); throws unless it ends with a blank line. */
export function sseEvents(body: string): string[] {
  if (!body.endsWith('\n\n'))
    throw new Error(`the body does not end with a blank line: ${JSON.stringify(body.slice(-40))}`)
  return body.slice(0, -2).split('\n\n')
}

/** Reads a streamed body until `until` holds for what came so far; returns that text and the reader (to read on or cancel). */
export async function readUntil(
  res: Response,
  until: (text: string) => boolean,
): Promise<{ text: string; reader: ReadableStreamDefaultReader<Uint8Array> }> {
  const reader = (res.body as ReadableStream<Uint8Array>).getReader()
  const decoder = new TextDecoder()
  let text = ''
  while (!until(text)) {
    const { value, done } = await reader.read()
    if (done) throw new Error(`the stream ended first: ${JSON.stringify(text.slice(-200))}`)
    text += decoder.decode(value, { stream: true })
  }
  return { text, reader }
}

/** The rest of a body `readUntil` began. */
export async function readRest(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<string> {
  const decoder = new TextDecoder()
  let text = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return text + decoder.decode()
    text += decoder.decode(value, { stream: true })
  }
}
