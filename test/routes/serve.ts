/** Shared set-up for HTTP tests: one real engine per test file, a fresh app per test on a real port. */
import type { Test } from 'tap'
import OpenAI from 'openai'
import { startEngine, type LocalEngineClient } from '../../src/batching/http-thread/engine-client.js'
import { buildApp, type AppOptions } from '../../src/server/app.js'
import { tinyModelDir } from '../helpers/tiny-model.js'

export const MODEL = 'kelix-tiny'

/** The tiny model in a real engine worker; closed when the test file's root test ends. */
export async function tinyEngine(t: Test, options: Parameters<typeof startEngine>[0] | object = {}): Promise<LocalEngineClient> {
  const engine = await startEngine({ modelDir: await tinyModelDir(), intraOpThreads: 1, ...options })
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
export async function serve(t: Test, engine: LocalEngineClient, options: Partial<AppOptions> = {}): Promise<Served> {
  const app = await buildApp({ logger: false, engine, model: { id: MODEL, aliases: ['kelix'], created: 1700000000 }, systemFingerprint: 'fp_test', ...options })
  t.teardown(() => app.close())
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

export const hello = (extra: object = {}) => ({ model: MODEL, messages: [{ role: 'user', content: 'Hello' }], max_tokens: 4, ...extra })
