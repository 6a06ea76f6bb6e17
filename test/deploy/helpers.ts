/** Shared by the deployment checks: repository paths, YAML, exported metric names, PromQL names, tools. */
import { execFileSync } from 'node:child_process'
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse, parseAllDocuments } from 'yaml'
import { createMetrics } from '../../src/server/metrics.js'

export const ROOT = fileURLToPath(new URL('../../', import.meta.url))
export const CHART = join(ROOT, 'helm/kelix-serve')

export function readText(path: string): string {
  return readFileSync(join(ROOT, path), 'utf8')
}

export function readYaml<T = unknown>(path: string): T {
  return parse(readText(path)) as T
}

/** Every YAML document in a file; throws with the file name and the parser's message on the first error. */
export function parseYamlFile(path: string): unknown[] {
  const docs = parseAllDocuments(readText(path))
  const list = Array.isArray(docs) ? docs : [docs]
  for (const doc of list) {
    const error = doc.errors[0]
    if (error) throw new Error(`${path}: ${error.message}`)
  }
  return list.map((d) => d.toJS())
}

/** Files under `dir` (relative to the repository), recursively, whose names match. */
export function listFiles(dir: string, match: RegExp): string[] {
  const out: string[] = []
  const walk = (abs: string) => {
    for (const name of readdirSync(abs).sort()) {
      const path = join(abs, name)
      if (statSync(path).isDirectory()) walk(path)
      else if (match.test(name)) out.push(relative(ROOT, path))
    }
  }
  walk(join(ROOT, dir))
  return out
}

/** Metric names (with their types) that a fresh registry exports, process metrics included. */
export async function exportedMetrics(): Promise<Map<string, string>> {
  const { registry } = createMetrics()
  return new Map((await registry.getMetricsAsJSON()).map((m) => [m.name, String(m.type)]))
}

/** Names a PromQL expression may use: every exported name, and `_bucket/_sum/_count` of histograms. */
export async function queryableNames(): Promise<Set<string>> {
  const names = new Set<string>()
  for (const [name, type] of await exportedMetrics()) {
    names.add(name)
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix)
  }
  return names
}

/** The `kelix_*` identifiers of a PromQL expression, string literals (label values) left out. */
export function kelixNames(expr: string): string[] {
  const code = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
  return [...new Set(code.match(/\bkelix_[a-zA-Z0-9_:]*/g) ?? [])]
}

export interface Rule {
  alert?: string
  record?: string
  expr: string
  for?: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
}

export function alertRules(path = 'deploy/prometheus/kelix-alerts.yml'): Rule[] {
  const file = readYaml<{ groups: { name: string; rules: Rule[] }[] }>(path)
  return file.groups.flatMap((g) => g.rules)
}

export interface Dashboard {
  templating: { list: { name: string; type: string; query: unknown; datasource?: unknown }[] }
  panels: {
    id: number
    type: string
    title: string
    datasource?: { uid: string }
    gridPos: { x: number; y: number; w: number; h: number }
    targets?: { expr: string; datasource?: { uid: string } }[]
  }[]
}

export function dashboard(path = 'deploy/grafana/kelix-serve.json'): Dashboard {
  return JSON.parse(readText(path)) as Dashboard
}

/** The path of an executable on PATH, or undefined. */
export function which(command: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' }).trim() || undefined
  } catch {
    return undefined
  }
}
