/**
 * A real Prometheus (Debian's `prometheus` package) on a loopback port, scraping given targets
 * every 250 ms as job "kelix-serve" and evaluating given rule files as often (the tests wait
 * for a number of scrapes or a rule state, so a short interval only makes them quicker). For tests:
 *
 *   const prom = await startPrometheus({ targets: ['127.0.0.1:8000'], ruleFiles: [...] })
 *   await prom.waitForScrapes(3)
 *   const [sample] = await prom.query('kelix_prompt_tokens_total')
 *   await prom.close()
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

export interface Sample {
  metric: Record<string, string>
  value: [number, string]
}

export interface PrometheusAlert {
  labels: Record<string, string>
  state: 'pending' | 'firing'
}

export interface RuleState {
  name: string
  health: string
  lastError?: string
}

export interface Prometheus {
  url: string
  /** An instant query; throws with Prometheus's error when the expression is invalid. */
  query(expr: string): Promise<Sample[]>
  rules(): Promise<RuleState[]>
  alerts(): Promise<PrometheusAlert[]>
  /** Waits until every target has been scraped at least `count` times. */
  waitForScrapes(count: number, timeoutMs?: number): Promise<void>
  /** Polls `check` until it returns true. */
  until(check: () => Promise<boolean>, what: string, timeoutMs?: number): Promise<void>
  close(): Promise<void>
}

export async function startPrometheus(opts: {
  binary: string
  targets: string[]
  ruleFiles?: string[]
  job?: string
}): Promise<Prometheus> {
  const dir = mkdtempSync(join(tmpdir(), 'kelix-prometheus-'))
  const port = await freePort()
  const config = {
    global: { scrape_interval: '250ms', scrape_timeout: '250ms', evaluation_interval: '250ms' },
    rule_files: opts.ruleFiles ?? [],
    scrape_configs: [{ job_name: opts.job ?? 'kelix-serve', static_configs: [{ targets: opts.targets }] }],
  }
  writeFileSync(join(dir, 'prometheus.yml'), JSON.stringify(config, null, 2))
  const proc = spawn(
    opts.binary,
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  )
  let log = ''
  proc.stderr.on('data', (chunk: Buffer) => (log += chunk.toString()))
  const exited = once(proc, 'exit')
  const url = `http://127.0.0.1:${port}`

  const api = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${url}/api/v1/${path}`)
    const body = (await res.json()) as { status: string; data: T; error?: string }
    if (body.status !== 'success') throw new Error(`Prometheus ${path}: ${body.error}`)
    return body.data
  }
  const until = async (check: () => Promise<boolean>, what: string, timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      if (proc.exitCode !== null)
        throw new Error(`Prometheus exited (${proc.exitCode}) while waiting for ${what}:\n${log}`)
      if (await check().catch(() => false)) return
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; Prometheus log:\n${log}`)
      await sleep(50)
    }
  }

  const prom: Prometheus = {
    url,
    query: async (expr) => (await api<{ result: Sample[] }>(`query?query=${encodeURIComponent(expr)}`)).result,
    rules: async () => (await api<{ groups: { rules: RuleState[] }[] }>('rules')).groups.flatMap((g) => g.rules),
    alerts: async () => (await api<{ alerts: PrometheusAlert[] }>('alerts')).alerts,
    until,
    async waitForScrapes(count, timeoutMs) {
      const expr = `min(count_over_time(up[5m])) >= ${count} and min(up) == 1`
      await until(
        async () => (await prom.query(expr)).length > 0 && (await prom.query('up')).length === opts.targets.length,
        `${count} scrapes`,
        timeoutMs,
      )
    },
    async close() {
      if (proc.exitCode === null) {
        proc.kill('SIGTERM')
        await exited
      }
      rmSync(dir, { recursive: true, force: true })
    },
  }
  await until(async () => (await fetch(`${url}/-/ready`)).ok, 'Prometheus to be ready')
  return prom
}

async function freePort(): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  server.close()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}
