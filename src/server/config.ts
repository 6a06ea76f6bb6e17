/**
 * Server options from CLI flags and `KELIX_*` environment variables (a flag
 * wins over its variable), normalised once into one frozen object. Every
 * setting is one row of `SETTINGS`, which also writes `--help`. A bad value
 * fails start-up with a message naming the variable (and the flag, when one
 * was given).
 */
import { readFileSync } from 'node:fs'
import { DEFAULT_MODEL_DIR } from '../builder/default-model-dir.js'
import { DEFAULT_LIMITS, limitsProblem, type LimitNames } from '../batching/limits.js'
import type { SchedulingLimits } from '../batching/protocol.js'

export type ExecutionProviderName = 'cpu' | 'cuda' | 'webgpu'
const PROVIDERS: readonly ExecutionProviderName[] = ['cpu', 'cuda', 'webgpu']
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
const MIB = 1024 * 1024

export interface ServerConfig {
  host: string
  port: number
  /** Model directory; the embedded tiny model when KELIX_MODEL_DIR is unset. */
  modelDir: string
  /** True when serving the embedded default, which is built on first start. */
  embeddedModel: boolean
  /** The id clients send as `model`; default: config.json's `name`. */
  servedModelName: string | undefined
  /** Other ids accepted as `model` (answers carry the served name). */
  modelAliases: string[]
  logLevel: (typeof LOG_LEVELS)[number]
  /** Log each request's messages (images as byte counts) on its request line. Default false. */
  logPrompts: boolean
  /** ONNX Runtime execution providers in order of preference (KELIX_EXECUTION_PROVIDERS=cuda,cpu). */
  executionProviders: ExecutionProviderName[]
  /** Threads per operator in the engine worker; default: ONNX Runtime's choice. */
  intraOpThreads: number | undefined
  /** Accepted Bearer keys, from KELIX_API_KEYS and KELIX_API_KEYS_FILE; empty: no authentication. */
  apiKeys: string[]
  /** Require a key on /health/* too. Default false. */
  authHealth: boolean
  /** Require a key on /metrics too. Default false. */
  authMetrics: boolean
  /** Serve no browser playground at `/`. Default false (the playground is served). */
  disablePlayground: boolean
  /** Largest JSON request body, bytes (413 past it). Default 32 MiB. */
  maxBodyBytes: number
  /** Most images in one request (data URLs, remote URLs and files together). Default 8. */
  maxImagesPerRequest: number
  /** Largest encoded image (decoded data URL, file part or download), bytes. Default 20 MiB. */
  maxImageBytes: number
  /** Most pixels in one decoded image, checked by the engine before decoding. Default 50 000 000. */
  maxImagePixels: number
  /** Prompt-prefix positions kept for reuse (automatic prefix caching); 0 turns it off. Default 4096. */
  prefixCachePositions: number
  /** Most prompt positions (images included); default: the model's context. */
  maxPromptTokens: number | undefined
  /** Largest `max_tokens` a request may ask for; default: the model's context. */
  maxTokensLimit: number | undefined
  /** Largest `n`. Default 16. */
  maxChoices: number
  /** Longest a request may take start to finish, ms; default: no limit. */
  requestTimeoutMs: number | undefined
  /** Allow `https` image URLs (to KELIX_REMOTE_IMAGE_HOSTS only). Default false. */
  remoteImages: boolean
  /** Host names remote images may come from; `*.example.com` matches subdomains. */
  remoteImageHosts: string[]
  /** Time limit for one remote image, redirects included, ms. Default 10 000. */
  remoteImageTimeoutMs: number
  /** Redirects followed per remote image. Default 3. */
  remoteImageMaxRedirects: number
  /** SSE comment sent when a stream has been quiet this long, ms. Default 15 000. */
  sseHeartbeatMs: number
  /** How long SIGTERM waits for running requests before ending them, ms. Default 30 000. */
  drainTimeoutMs: number
  /** Most sequences in one batch (vLLM's max_num_seqs). Default: DEFAULT_LIMITS (src/batching/limits.ts). */
  maxNumSeqs: number
  /** Most blocks computed per engine step, decodes and prefill chunks together; at least maxNumSeqs. Default: DEFAULT_LIMITS. */
  maxBatchedTokens: number
  /** KV cache capacity in positions, over all sequences; at least the model's context (checked once the model is loaded). Default: DEFAULT_LIMITS. */
  kvCapacity: number
  /** Requests waiting for a place before 429. Default 256. */
  maxWaiting: number
  /** Prompt positions waiting before 429. Default 65 536. */
  maxWaitingTokens: number
  /** The engine counts as hung after this long without a loop turn, ms (then it is replaced). Default 30 000. */
  engineHungMs: number
}

type Env = Record<string, string | undefined>

export class ConfigError extends Error {
  override readonly name = 'ConfigError'
}

/** An argument that is no setting's flag; `flag` is it without any `=value`. */
export class UnknownFlagError extends ConfigError {
  constructor(
    readonly flag: string,
    arg: string,
  ) {
    super(`unknown option "${arg}"; see --help`)
  }
}

interface Setting {
  key: keyof ServerConfig
  env: string
  /** Absent for secrets, which never belong on a command line. */
  flag?: string
  /** Takes no value on the command line. */
  boolean?: boolean
  default: string
  help: string
  parse(raw: string | undefined, name: string): unknown
}

function setting<K extends keyof ServerConfig>(
  spec: Omit<Setting, 'key' | 'parse'> & { key: K; parse(raw: string | undefined, name: string): ServerConfig[K] },
): Setting {
  return spec
}

const nonEmpty = (raw: string | undefined): raw is string => raw !== undefined && raw !== ''

function integer(min: number, max: number, fallback: number): (raw: string | undefined, name: string) => number
function integer(
  min: number,
  max: number,
  fallback: undefined,
): (raw: string | undefined, name: string) => number | undefined
function integer(min: number, max: number, fallback: number | undefined) {
  return (raw: string | undefined, name: string) => {
    if (!nonEmpty(raw)) return fallback
    const value = Number(raw)
    if (!Number.isInteger(value) || value < min || value > max)
      throw new ConfigError(`${name} must be an integer in ${min}..${max}, got "${raw}"`)
    return value
  }
}

function boolean(raw: string | undefined, name: string): boolean {
  if (!nonEmpty(raw)) return false
  if (['1', 'true', 'yes', 'on'].includes(raw.toLowerCase())) return true
  if (['0', 'false', 'no', 'off'].includes(raw.toLowerCase())) return false
  throw new ConfigError(`${name} must be 1/true/yes/on or 0/false/no/off, got "${raw}"`)
}

function list(raw: string | undefined): string[] {
  if (!nonEmpty(raw)) return []
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
}

function oneOf<T extends string>(allowed: readonly T[], fallback: T) {
  return (raw: string | undefined, name: string): T => {
    if (!nonEmpty(raw)) return fallback
    if (!(allowed as readonly string[]).includes(raw))
      throw new ConfigError(`${name} must be one of ${allowed.join(', ')}, got "${raw}"`)
    return raw as T
  }
}

function providerList(raw: string | undefined, name: string): ExecutionProviderName[] {
  const names = list(raw)
  if (names.length === 0) return ['cpu']
  for (const p of names) {
    if (!(PROVIDERS as readonly string[]).includes(p))
      throw new ConfigError(`${name} lists "${p}"; known providers: ${PROVIDERS.join(', ')}`)
  }
  return names as ExecutionProviderName[]
}

function hostList(raw: string | undefined, name: string): string[] {
  const hosts = list(raw).map((h) => h.toLowerCase())
  for (const h of hosts) {
    if (!/^(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*$/.test(h))
      throw new ConfigError(`${name} lists "${h}"; expected host names such as images.example.com or *.example.com`)
  }
  return hosts
}

/** One key per line; blank lines and lines starting with # are skipped. */
function keysFile(raw: string | undefined, name: string): string[] {
  if (!nonEmpty(raw)) return []
  let text: string
  try {
    text = readFileSync(raw, 'utf8')
  } catch (err) {
    throw new ConfigError(
      `${name}: cannot read "${raw}" (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    )
  }
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
}

/** Every setting, in `--help` order. */
export const SETTINGS: readonly Setting[] = [
  setting({
    key: 'host',
    env: 'KELIX_HOST',
    flag: '--host',
    default: '0.0.0.0',
    help: 'listen address',
    parse: (raw) => (nonEmpty(raw) ? raw : '0.0.0.0'),
  }),
  setting({
    key: 'port',
    env: 'KELIX_PORT',
    flag: '--port',
    default: '8000',
    help: 'listen port',
    parse: integer(0, 65535, 8000),
  }),
  setting({
    key: 'modelDir',
    env: 'KELIX_MODEL_DIR',
    flag: '--model-dir',
    default: 'models/kelix-tiny (built on first start)',
    help: 'the model directory to serve',
    parse: (raw) => (nonEmpty(raw) ? raw : DEFAULT_MODEL_DIR),
  }),
  setting({
    key: 'servedModelName',
    env: 'KELIX_SERVED_MODEL_NAME',
    flag: '--served-model-name',
    default: "config.json's name",
    help: 'the id clients send as `model`',
    parse: (raw) => (nonEmpty(raw) ? raw : undefined),
  }),
  setting({
    key: 'modelAliases',
    env: 'KELIX_MODEL_ALIASES',
    flag: '--model-aliases',
    default: 'none',
    help: 'comma list of other ids accepted as `model`',
    parse: list,
  }),
  setting({
    key: 'logLevel',
    env: 'KELIX_LOG_LEVEL',
    flag: '--log-level',
    default: 'info',
    help: `pino level: ${LOG_LEVELS.join(', ')}`,
    parse: oneOf(LOG_LEVELS, 'info'),
  }),
  setting({
    key: 'logPrompts',
    env: 'KELIX_LOG_PROMPTS',
    flag: '--log-prompts',
    boolean: true,
    default: 'false',
    help: 'log request messages (images as byte counts)',
    parse: boolean,
  }),
  setting({
    key: 'executionProviders',
    env: 'KELIX_EXECUTION_PROVIDERS',
    flag: '--execution-providers',
    default: 'cpu',
    help: 'ONNX Runtime providers in order of preference: cpu, cuda, webgpu',
    parse: providerList,
  }),
  setting({
    key: 'intraOpThreads',
    env: 'KELIX_INTRA_OP_THREADS',
    flag: '--intra-op-threads',
    default: 'cores − 1 (at least 1)',
    help: 'threads per operator in the engine worker; one core is left to HTTP',
    parse: integer(1, 1024, undefined),
  }),
  setting({
    key: 'apiKeys',
    env: 'KELIX_API_KEYS',
    default: 'none (no authentication)',
    help: 'comma list of accepted Bearer keys',
    parse: list,
  }),
  setting({
    key: 'apiKeys',
    env: 'KELIX_API_KEYS_FILE',
    flag: '--api-keys-file',
    default: 'none',
    help: 'file with one accepted key per line (# comments), added to KELIX_API_KEYS',
    parse: keysFile,
  }),
  setting({
    key: 'authHealth',
    env: 'KELIX_AUTH_HEALTH',
    flag: '--auth-health',
    boolean: true,
    default: 'false',
    help: 'require a key on /health/*',
    parse: boolean,
  }),
  setting({
    key: 'authMetrics',
    env: 'KELIX_AUTH_METRICS',
    flag: '--auth-metrics',
    boolean: true,
    default: 'false',
    help: 'require a key on /metrics',
    parse: boolean,
  }),
  setting({
    key: 'disablePlayground',
    env: 'KELIX_DISABLE_PLAYGROUND',
    flag: '--disable-playground',
    boolean: true,
    default: 'false',
    help: 'serve no browser playground at /',
    parse: boolean,
  }),
  setting({
    key: 'maxBodyBytes',
    env: 'KELIX_MAX_BODY_BYTES',
    flag: '--max-body-bytes',
    default: String(32 * MIB),
    help: 'largest JSON request body in bytes (413 past it)',
    parse: integer(1024, 2 ** 31, 32 * MIB),
  }),
  setting({
    key: 'maxImagesPerRequest',
    env: 'KELIX_MAX_IMAGES',
    flag: '--max-images',
    default: '8',
    help: 'most images in one request',
    parse: integer(0, 1024, 8),
  }),
  setting({
    key: 'maxImageBytes',
    env: 'KELIX_MAX_IMAGE_BYTES',
    flag: '--max-image-bytes',
    default: String(20 * MIB),
    help: 'largest encoded image in bytes (data URL, file part or download)',
    parse: integer(1, 2 ** 31, 20 * MIB),
  }),
  setting({
    key: 'maxImagePixels',
    env: 'KELIX_MAX_IMAGE_PIXELS',
    flag: '--max-image-pixels',
    default: '50000000',
    help: 'most pixels in one decoded image',
    parse: integer(1, 2 ** 40, 50_000_000),
  }),
  setting({
    key: 'maxPromptTokens',
    env: 'KELIX_MAX_PROMPT_TOKENS',
    flag: '--max-prompt-tokens',
    default: 'the context length',
    help: 'most prompt positions, images included',
    parse: integer(1, 2 ** 31, undefined),
  }),
  setting({
    key: 'maxTokensLimit',
    env: 'KELIX_MAX_TOKENS',
    flag: '--max-tokens',
    default: 'the context length',
    help: 'largest max_tokens a request may ask for',
    parse: integer(1, 2 ** 31, undefined),
  }),
  setting({
    key: 'maxChoices',
    env: 'KELIX_MAX_N',
    flag: '--max-n',
    default: '16',
    help: 'largest n',
    parse: integer(1, 128, 16),
  }),
  setting({
    key: 'requestTimeoutMs',
    env: 'KELIX_REQUEST_TIMEOUT_MS',
    flag: '--request-timeout-ms',
    default: 'none',
    help: 'longest a request may take, start to finish (408 past it)',
    parse: integer(1, 2 ** 31, undefined),
  }),
  setting({
    key: 'remoteImages',
    env: 'KELIX_REMOTE_IMAGES',
    flag: '--remote-images',
    boolean: true,
    default: 'false',
    help: 'allow https image URLs, to KELIX_REMOTE_IMAGE_HOSTS only',
    parse: boolean,
  }),
  setting({
    key: 'remoteImageHosts',
    env: 'KELIX_REMOTE_IMAGE_HOSTS',
    flag: '--remote-image-hosts',
    default: 'none',
    help: 'comma list of hosts remote images may come from; *.example.com matches subdomains',
    parse: hostList,
  }),
  setting({
    key: 'remoteImageTimeoutMs',
    env: 'KELIX_REMOTE_IMAGE_TIMEOUT_MS',
    flag: '--remote-image-timeout-ms',
    default: '10000',
    help: 'time limit per remote image, redirects included',
    parse: integer(1, 600_000, 10_000),
  }),
  setting({
    key: 'remoteImageMaxRedirects',
    env: 'KELIX_REMOTE_IMAGE_MAX_REDIRECTS',
    flag: '--remote-image-max-redirects',
    default: '3',
    help: 'redirects followed per remote image',
    parse: integer(0, 10, 3),
  }),
  setting({
    key: 'sseHeartbeatMs',
    env: 'KELIX_SSE_HEARTBEAT_MS',
    flag: '--sse-heartbeat-ms',
    default: '15000',
    help: 'SSE keep-alive comment after this much quiet',
    parse: integer(10, 600_000, 15_000),
  }),
  setting({
    key: 'maxNumSeqs',
    env: 'KELIX_MAX_NUM_SEQS',
    flag: '--max-num-seqs',
    default: String(DEFAULT_LIMITS.maxNumSeqs),
    help: 'most sequences in one batch',
    parse: integer(1, 4096, DEFAULT_LIMITS.maxNumSeqs),
  }),
  setting({
    key: 'maxBatchedTokens',
    env: 'KELIX_MAX_BATCHED_TOKENS',
    flag: '--max-batched-tokens',
    default: String(DEFAULT_LIMITS.maxBatchedTokens),
    help: 'most blocks per engine step (decodes + prefill chunks); at least max-num-seqs',
    parse: integer(1, 2 ** 20, DEFAULT_LIMITS.maxBatchedTokens),
  }),
  setting({
    key: 'prefixCachePositions',
    env: 'KELIX_PREFIX_CACHE_POSITIONS',
    flag: '--prefix-cache-positions',
    default: '4096',
    help: 'prompt-prefix positions kept for reuse across requests (whole 8-block chunks); 0 turns prefix caching off',
    parse: integer(0, 2 ** 31, 4096),
  }),
  setting({
    key: 'kvCapacity',
    env: 'KELIX_KV_CAPACITY',
    flag: '--kv-capacity',
    default: String(DEFAULT_LIMITS.kvCapacity),
    help: 'KV cache capacity in positions over all sequences; at least the context length',
    parse: integer(1, 2 ** 31, DEFAULT_LIMITS.kvCapacity),
  }),
  setting({
    key: 'maxWaiting',
    env: 'KELIX_MAX_WAITING',
    flag: '--max-waiting',
    default: '256',
    help: 'requests waiting for a place before 429',
    parse: integer(1, 2 ** 20, 256),
  }),
  setting({
    key: 'maxWaitingTokens',
    env: 'KELIX_MAX_WAITING_TOKENS',
    flag: '--max-waiting-tokens',
    default: '65536',
    help: 'prompt positions waiting before 429',
    parse: integer(1, 2 ** 31, 65_536),
  }),
  setting({
    key: 'engineHungMs',
    env: 'KELIX_ENGINE_HUNG_MS',
    flag: '--engine-hung-ms',
    default: '30000',
    help: 'engine loop silent this long: replaced, in-flight requests fail',
    parse: integer(100, 3_600_000, 30_000),
  }),
  setting({
    key: 'drainTimeoutMs',
    env: 'KELIX_DRAIN_TIMEOUT_MS',
    flag: '--drain-timeout-ms',
    default: '30000',
    help: 'on SIGTERM, how long running requests may finish',
    parse: integer(0, 3_600_000, 30_000),
  }),
]

/** Every flag a setting has, for suggesting the closest to a mistyped one. */
export const SERVER_FLAGS: readonly string[] = SETTINGS.flatMap((s) => (s.flag === undefined ? [] : [s.flag]))

/**
 * Reads every setting from `argv` flags (`--port 80`, `--port=80`, bare
 * `--log-prompts`) over `env`. `--help` is not a setting: callers check
 * `wantsHelp(argv)` first.
 */
export function loadServerConfig(env: Env = process.env, argv: readonly string[] = []): ServerConfig {
  const flags = parseFlags(argv)
  const values: Record<string, unknown> = {}
  /** Each setting as the user gave it: its flag, else its variable. */
  const givenAs = new Map<keyof ServerConfig, string>()
  for (const s of SETTINGS) {
    const fromFlag = s.flag !== undefined && flags.has(s.flag)
    const raw = fromFlag ? flags.get(s.flag!) : env[s.env]
    const name = fromFlag ? `${s.flag} (${s.env})` : s.env
    const value = s.parse(raw, name)
    values[s.key] = Array.isArray(values[s.key]) ? [...(values[s.key] as unknown[]), ...(value as unknown[])] : value
    givenAs.set(s.key, fromFlag ? s.flag! : s.env)
  }
  const config = {
    ...values,
    embeddedModel: !nonEmpty(flags.get('--model-dir') ?? env.KELIX_MODEL_DIR),
  } as ServerConfig
  if (config.remoteImages && config.remoteImageHosts.length === 0) {
    throw new ConfigError(
      'KELIX_REMOTE_IMAGES is on but KELIX_REMOTE_IMAGE_HOSTS lists no host; list the hosts images may come from',
    )
  }
  // The limits' combination, as far as it is known before the model is (the worker checks the KV against the context).
  const names: LimitNames = {
    maxNumSeqs: givenAs.get('maxNumSeqs'),
    maxBatchedTokens: givenAs.get('maxBatchedTokens'),
    kvCapacity: givenAs.get('kvCapacity'),
    pageSize: 'the KV page size',
  }
  const problem = limitsProblem(schedulingLimits(config), undefined, names)
  if (problem !== undefined) throw new ConfigError(problem)
  return Object.freeze(config)
}

/** The engine's scheduling limits from the configuration (the KV page size is not a setting). */
export function schedulingLimits(
  config: Pick<ServerConfig, 'maxNumSeqs' | 'maxBatchedTokens' | 'kvCapacity'>,
): SchedulingLimits {
  return {
    maxNumSeqs: config.maxNumSeqs,
    maxBatchedTokens: config.maxBatchedTokens,
    kvCapacity: config.kvCapacity,
    pageSize: DEFAULT_LIMITS.pageSize,
  }
}

/** How the engine names the limits when it refuses them once the model is loaded: each setting's flag and variable. */
export function limitSettingNames(): LimitNames {
  const both = (key: keyof ServerConfig) => SETTINGS.filter((s) => s.key === key).map((s) => `${s.flag}/${s.env}`)[0]
  return {
    maxNumSeqs: both('maxNumSeqs'),
    maxBatchedTokens: both('maxBatchedTokens'),
    kvCapacity: both('kvCapacity'),
    pageSize: 'the KV page size',
  }
}

export function wantsHelp(argv: readonly string[]): boolean {
  return argv.includes('--help') || argv.includes('-h')
}

/** `--help`: every setting with its flag, variable and default. */
export function helpText(usage = 'Usage: node dist/server/main.js [flags]'): string {
  const rows = SETTINGS.map((s) => [
    `${s.flag ?? ''}${s.flag !== undefined && !s.boolean ? ' <value>' : ''}`,
    s.env,
    s.default,
    s.help,
  ])
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i]!.length)))
  const lines = rows.map((r) => r.map((cell, i) => (i < 3 ? cell.padEnd(widths[i]!) : cell)).join('  '))
  return [usage, 'Each flag overrides its environment variable.', '', ...lines, ''].join('\n')
}

function parseFlags(argv: readonly string[]): Map<string, string> {
  const known = new Map(SETTINGS.filter((s) => s.flag !== undefined).map((s) => [s.flag!, s]))
  const flags = new Map<string, string>()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const eq = arg.indexOf('=')
    const flag = eq === -1 ? arg : arg.slice(0, eq)
    const s = known.get(flag)
    if (s === undefined) throw new UnknownFlagError(flag, arg)
    if (eq !== -1) flags.set(flag, arg.slice(eq + 1))
    else if (s.boolean) flags.set(flag, 'true')
    else if (i + 1 < argv.length) flags.set(flag, argv[++i]!)
    else throw new ConfigError(`${flag} needs a value`)
  }
  return flags
}
