/**
 * `npm start`: reads the configuration (`--help` lists it), builds the
 * embedded tiny model when it is missing, starts the engine worker, then
 * serves HTTP.
 *
 * Shutdown (SIGTERM/SIGINT), in order:
 *   readiness false, new requests 503 ─► engine.drain(KELIX_DRAIN_TIMEOUT_MS): running
 *   requests finish, the rest end with an error event ─► close the listener ─► exit 0.
 * A second signal, or the drain deadline passed by 10 s, exits 1 at once.
 */
import { ensureTinyModel } from '../builder/build-model.js'
import { startEngine } from '../batching/engine-client.js'
import { buildApp } from './app.js'
import { ConfigError, helpText, loadServerConfig, wantsHelp, type ServerConfig } from './config.js'
import { createMetrics } from './metrics.js'

const argv = process.argv.slice(2)
if (wantsHelp(argv)) {
  console.log(helpText())
  process.exit(0)
}

let config: ServerConfig
try {
  config = loadServerConfig(process.env, argv)
} catch (err) {
  if (!(err instanceof ConfigError)) throw err
  console.error(`kelix-serve: ${err.message}`)
  process.exit(2)
}
if (config.embeddedModel && (await ensureTinyModel(config.modelDir))) console.log(`built the embedded model at ${config.modelDir}`)

const metrics = createMetrics()
const engine = await startEngine({
  modelDir: config.modelDir,
  executionProviders: config.executionProviders,
  maxImagePixels: config.maxImagePixels,
  prefixCachePositions: config.prefixCachePositions,
  limits: { maxNumSeqs: config.maxNumSeqs, maxBatchedTokens: Math.max(config.maxBatchedTokens, config.maxNumSeqs), kvCapacity: config.kvCapacity },
  maxWaiting: config.maxWaiting,
  maxWaitingTokens: config.maxWaitingTokens,
  hungAfterMs: config.engineHungMs,
  observer: metrics.observer,
  ...(config.intraOpThreads === undefined ? {} : { intraOpThreads: config.intraOpThreads }),
})
const app = await buildApp({
  logger: { level: config.logLevel },
  engine,
  model: { id: config.servedModelName ?? engine.model.name, aliases: config.modelAliases, created: Math.floor(Date.now() / 1000) },
  config,
  metrics,
})
await app.listen({ host: config.host, port: config.port })

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
