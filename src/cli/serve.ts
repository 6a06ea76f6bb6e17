/**
 * `kelix-serve serve [MODEL_DIR] [flags]` (and `npm start`): reads the
 * configuration (`--help` lists it), builds the embedded tiny model when it is
 * missing, starts the engine worker, then serves HTTP.
 *
 * Shutdown (SIGTERM/SIGINT), in order:
 *   readiness false, new requests 503 ─► engine.drain(KELIX_DRAIN_TIMEOUT_MS): running
 *   requests finish, the rest end with an error event ─► close the listener ─► exit 0.
 * A second signal, or the drain deadline passed by 10 s, exits 1 at once.
 */
import { accessSync, constants, statSync } from 'node:fs'
import { pino } from 'pino'
import { ensureTinyModel } from '../builder/build-model.js'
import { startEngine, type LocalEngineClient } from '../batching/http-thread/engine-client.js'
import { KelixError } from '../errors/kelix-error.js'
import { buildApp } from '../server/app.js'
import {
  ConfigError,
  helpText,
  limitSettingNames,
  loadServerConfig,
  schedulingLimits,
  SERVER_FLAGS,
  UnknownFlagError,
  wantsHelp,
  type ServerConfig,
} from '../server/config.js'
import { createMetrics } from '../server/metrics.js'
import { CommandError, UsageError, unknownFlag, type Command } from './command.js'

type App = Awaited<ReturnType<typeof buildApp>>

/**
 * Resolves with the exit code when it does not get as far as serving (--help,
 * a bad setting, a model that does not load, a port it cannot listen on).
 * Once serving, shutdown ends the process itself.
 */
export const serve: Command = async (argv, usage) => {
  if (wantsHelp(argv)) {
    console.log(helpText(`Usage: ${usage} [MODEL_DIR] [flags]\nMODEL_DIR is the same as --model-dir.`))
    return 0
  }
  const config = readConfig(argv)
  if (config.embeddedModel && (await ensureTinyModel(config.modelDir)))
    console.log(`built the embedded model at ${config.modelDir}`)
  checkModelDirAccess(config.modelDir)
  const metrics = createMetrics()
  const engine = await start(config, metrics)
  const app = await buildApp({
    logger: { level: config.logLevel },
    engine,
    model: {
      id: config.servedModelName ?? engine.model.name,
      aliases: config.modelAliases,
      created: Math.floor(Date.now() / 1000),
    },
    config,
    metrics,
  })
  for (const { provider, reason } of engine.model.providers.skipped)
    app.log.warn({ provider, reason }, `execution provider ${provider} skipped: it could not be loaded`)
  app.log.info({ providers: engine.model.providers.inUse }, `execution provider in use: ${engine.executionProvider}`)
  await listen(app, engine, config)
  shutDownOnSignals(app, engine, config)
  return new Promise<number>(() => {})
}

/**
 * A model directory this user may not open (no search permission on it or on
 * a parent): the loader would only see files that seem not to exist, so say
 * what is wrong here. A path that does not exist or is not a directory is
 * left to the loader (MODEL_DIR_MISSING).
 */
function checkModelDirAccess(dir: string): void {
  try {
    if (statSync(dir).isDirectory()) accessSync(dir, constants.X_OK)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EACCES' || code === 'EPERM')
      throw new CommandError(`cannot read the model directory ${dir}: permission denied (${code})`)
  }
}

/** A positional MODEL_DIR (first, as in `vllm serve MODEL`) is `--model-dir`. */
function readConfig(argv: string[]): ServerConfig {
  const [first, ...rest] = argv
  const positional = first !== undefined && !first.startsWith('-')
  if (positional && rest.some((arg) => arg === '--model-dir' || arg.startsWith('--model-dir='))) {
    throw new UsageError(`the model directory is given twice: ${first} and --model-dir; give one`)
  }
  try {
    return loadServerConfig(process.env, positional ? [`--model-dir=${first}`, ...rest] : argv)
  } catch (err) {
    if (err instanceof UnknownFlagError && !err.flag.startsWith('-'))
      throw new UsageError(`unexpected argument ${err.flag}: give MODEL_DIR first, then flags`)
    if (err instanceof UnknownFlagError) throw unknownFlag(err.flag, SERVER_FLAGS)
    if (err instanceof ConfigError) throw new UsageError(err.message)
    throw err
  }
}

async function start(config: ServerConfig, metrics: ReturnType<typeof createMetrics>): Promise<LocalEngineClient> {
  try {
    return await startEngine({
      modelDir: config.modelDir,
      executionProviders: config.executionProviders,
      maxImagePixels: config.maxImagePixels,
      prefixCachePositions: config.prefixCachePositions,
      limits: schedulingLimits(config),
      limitNames: limitSettingNames(),
      maxWaiting: config.maxWaiting,
      maxWaitingTokens: config.maxWaitingTokens,
      hungAfterMs: config.engineHungMs,
      observer: metrics.observer,
      // The worker's own lines (a failed step, a worker that died), in the server's log format and level.
      logger: pino({ level: config.logLevel }).child({ component: 'engine' }),
      ...(config.intraOpThreads === undefined ? {} : { intraOpThreads: config.intraOpThreads }),
    })
  } catch (err) {
    // The loader's code and message name the file or directory at fault.
    if (err instanceof KelixError) throw new CommandError(`${err.code}: ${err.message}`)
    throw err
  }
}

async function listen(app: App, engine: LocalEngineClient, config: ServerConfig): Promise<void> {
  try {
    await app.listen({ host: config.host, port: config.port })
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code !== 'EADDRINUSE' && code !== 'EACCES' && code !== 'EADDRNOTAVAIL') throw err
    await app.close()
    await engine.close()
    throw new CommandError(`cannot listen on ${config.host}:${config.port} (${code})`)
  }
}

function shutDownOnSignals(app: App, engine: LocalEngineClient, config: ServerConfig): void {
  let shuttingDown = false
  async function shutdown(signal: NodeJS.Signals): Promise<void> {
    if (shuttingDown) {
      app.log.warn({ signal }, 'second signal: exiting now')
      process.exit(1)
    }
    shuttingDown = true
    app.log.info({ signal, drainTimeoutMs: config.drainTimeoutMs }, 'shutting down: draining')
    setTimeout(() => {
      app.log.error('drain deadline passed: exiting now')
      process.exit(1)
    }, config.drainTimeoutMs + 10_000).unref()
    app.startDraining()
    await engine.drain(config.drainTimeoutMs)
    await app.close()
    app.log.info('shut down')
    process.exit(0)
  }
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, (s) => void shutdown(s))
}
