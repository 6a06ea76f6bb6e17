/**
 * `npm start`: builds the embedded tiny model when it is missing, starts the
 * engine worker, then serves HTTP. SIGTERM/SIGINT close the listener first,
 * then the engine.
 */
import { ensureTinyModel } from '../builder/build-model.js'
import { EngineHost } from '../batching/engine-host.js'
import { buildApp } from './app.js'
import { loadServerConfig } from './config.js'

const config = loadServerConfig()
if (config.embeddedModel && (await ensureTinyModel(config.modelDir))) console.log(`built the embedded model at ${config.modelDir}`)

const engine = await EngineHost.start({ modelDir: config.modelDir, executionProviders: config.executionProviders, intraOpThreads: config.intraOpThreads })
const app = await buildApp({
  logger: { level: config.logLevel },
  model: { id: config.servedModelName ?? engine.model.name, created: Math.floor(Date.now() / 1000) },
  health: { ready: () => engine.ready },
})
await app.listen({ host: config.host, port: config.port })

let closing = false
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    if (closing) return
    closing = true
    app.log.info({ signal }, 'shutting down')
    void app.close().then(() => engine.close()).then(() => process.exit(0))
  })
}
