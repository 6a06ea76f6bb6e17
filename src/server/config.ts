/**
 * Server options, read once from the environment and normalised into one
 * frozen object. A bad value fails start-up with a message naming the variable.
 */
import { DEFAULT_MODEL_DIR } from '../builder/build-model.js'

export interface ServerConfig {
  host: string
  port: number
  /** Model directory; the embedded tiny model when KELIX_MODEL_DIR is unset. */
  modelDir: string
  /** True when serving the embedded default, which is built on first start. */
  embeddedModel: boolean
  /** The id clients send as `model`; default: config.json's `name`. */
  servedModelName: string | undefined
  logLevel: string
  /** ONNX Runtime execution providers in order of preference (KELIX_EXECUTION_PROVIDERS=cuda,cpu). */
  executionProviders: ExecutionProviderName[]
  /** Threads per operator in the engine worker; default: ONNX Runtime's choice. */
  intraOpThreads: number | undefined
}

export type ExecutionProviderName = 'cpu' | 'cuda' | 'webgpu'
const PROVIDERS: readonly ExecutionProviderName[] = ['cpu', 'cuda', 'webgpu']

type Env = Record<string, string | undefined>

export function loadServerConfig(env: Env = process.env): ServerConfig {
  const modelDir = env.KELIX_MODEL_DIR
  return Object.freeze({
    host: env.KELIX_HOST ?? '0.0.0.0',
    port: integer(env, 'KELIX_PORT', 8000, 0, 65535),
    modelDir: modelDir ?? DEFAULT_MODEL_DIR,
    embeddedModel: modelDir === undefined,
    servedModelName: env.KELIX_SERVED_MODEL_NAME,
    logLevel: oneOf(env, 'KELIX_LOG_LEVEL', 'info', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    executionProviders: providerList(env, 'KELIX_EXECUTION_PROVIDERS'),
    intraOpThreads: env.KELIX_INTRA_OP_THREADS ? integer(env, 'KELIX_INTRA_OP_THREADS', 0, 1, 1024) : undefined,
  })
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError'
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer in ${min}..${max}, got "${raw}"`)
  }
  return value
}

function oneOf<T extends string>(env: Env, name: string, fallback: T, allowed: readonly T[]): T {
  const raw = env[name]
  if (raw === undefined || raw === '') return fallback
  if (!(allowed as readonly string[]).includes(raw)) throw new ConfigError(`${name} must be one of ${allowed.join(', ')}, got "${raw}"`)
  return raw as T
}

function providerList(env: Env, name: string): ExecutionProviderName[] {
  const raw = env[name]
  if (raw === undefined || raw === '') return ['cpu']
  const names = raw.split(',').map((p) => p.trim())
  for (const p of names) {
    if (!(PROVIDERS as readonly string[]).includes(p)) throw new ConfigError(`${name} lists "${p}"; known providers: ${PROVIDERS.join(', ')}`)
  }
  return names as ExecutionProviderName[]
}
