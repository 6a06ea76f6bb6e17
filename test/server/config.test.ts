/** The configuration: defaults, variables, flags, and start-up errors that name the setting. */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ConfigError, SETTINGS, helpText, loadServerConfig, wantsHelp } from '../../src/server/config.js'

t.test('an empty environment gives the documented defaults', async (t) => {
  const c = loadServerConfig({})
  t.match(c, {
    host: '0.0.0.0',
    port: 8000,
    embeddedModel: true,
    servedModelName: undefined,
    modelAliases: [],
    logLevel: 'info',
    logPrompts: false,
    executionProviders: ['cpu'],
    apiKeys: [],
    authHealth: false,
    authMetrics: false,
    maxBodyBytes: 32 * 1024 * 1024,
    maxImagesPerRequest: 8,
    maxImageBytes: 20 * 1024 * 1024,
    maxImagePixels: 50_000_000,
    maxPromptTokens: undefined,
    maxTokensLimit: undefined,
    maxChoices: 16,
    requestTimeoutMs: undefined,
    remoteImages: false,
    remoteImageHosts: [],
    remoteImageTimeoutMs: 10_000,
    remoteImageMaxRedirects: 3,
    sseHeartbeatMs: 15_000,
    drainTimeoutMs: 30_000,
  })
  t.ok(Object.isFrozen(c))
})

t.test('variables set the served name, aliases, keys, limits and remote images', async (t) => {
  const c = loadServerConfig({
    KELIX_SERVED_MODEL_NAME: 'kelix-7b',
    KELIX_MODEL_ALIASES: 'gpt-4o, kelix ,',
    KELIX_API_KEYS: 'sk-one,sk-two',
    KELIX_MAX_IMAGES: '2',
    KELIX_REMOTE_IMAGES: '1',
    KELIX_REMOTE_IMAGE_HOSTS: 'Images.Example.com,*.cdn.example.org',
    KELIX_DRAIN_TIMEOUT_MS: '5000',
    KELIX_AUTH_HEALTH: 'true',
  })
  t.equal(c.servedModelName, 'kelix-7b')
  t.same(c.modelAliases, ['gpt-4o', 'kelix'])
  t.same(c.apiKeys, ['sk-one', 'sk-two'])
  t.equal(c.maxImagesPerRequest, 2)
  t.equal(c.remoteImages, true)
  t.same(c.remoteImageHosts, ['images.example.com', '*.cdn.example.org'])
  t.equal(c.drainTimeoutMs, 5000)
  t.equal(c.authHealth, true)
})

t.test('a keys file adds one key per line, skipping blanks and comments', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kelix-keys-'))
  const file = join(dir, 'keys')
  writeFileSync(file, '# team keys\nsk-file-1\n\n  sk-file-2  \r\n')
  t.same(loadServerConfig({ KELIX_API_KEYS: 'sk-env', KELIX_API_KEYS_FILE: file }).apiKeys, [
    'sk-env',
    'sk-file-1',
    'sk-file-2',
  ])
  t.throws(
    () => loadServerConfig({ KELIX_API_KEYS_FILE: join(dir, 'missing') }),
    new ConfigError(`KELIX_API_KEYS_FILE: cannot read "${join(dir, 'missing')}" (ENOENT)`),
  )
})

t.test('flags override their variables, in both spellings', async (t) => {
  const c = loadServerConfig({ KELIX_PORT: '9000', KELIX_LOG_LEVEL: 'warn' }, [
    '--port',
    '9100',
    '--log-level=debug',
    '--log-prompts',
    '--model-aliases',
    'a,b',
  ])
  t.equal(c.port, 9100)
  t.equal(c.logLevel, 'debug')
  t.equal(c.logPrompts, true)
  t.same(c.modelAliases, ['a', 'b'])
})

t.test('a bad value fails with a message naming the variable or the flag', async (t) => {
  t.throws(
    () => loadServerConfig({ KELIX_PORT: 'eighty' }),
    new ConfigError('KELIX_PORT must be an integer in 0..65535, got "eighty"'),
  )
  t.throws(
    () => loadServerConfig({}, ['--port', '-1']),
    new ConfigError('--port (KELIX_PORT) must be an integer in 0..65535, got "-1"'),
  )
  t.throws(
    () => loadServerConfig({ KELIX_LOG_PROMPTS: 'maybe' }),
    new ConfigError('KELIX_LOG_PROMPTS must be 1/true/yes/on or 0/false/no/off, got "maybe"'),
  )
  t.throws(
    () => loadServerConfig({ KELIX_LOG_LEVEL: 'loud' }),
    new ConfigError('KELIX_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "loud"'),
  )
  t.throws(
    () => loadServerConfig({ KELIX_EXECUTION_PROVIDERS: 'cuda,tpu' }),
    new ConfigError('KELIX_EXECUTION_PROVIDERS lists "tpu"; known providers: cpu, cuda, webgpu'),
  )
  t.throws(
    () => loadServerConfig({ KELIX_REMOTE_IMAGE_HOSTS: 'http://x.com' }),
    new ConfigError(
      'KELIX_REMOTE_IMAGE_HOSTS lists "http://x.com"; expected host names such as images.example.com or *.example.com',
    ),
  )
  t.throws(
    () => loadServerConfig({ KELIX_REMOTE_IMAGES: '1' }),
    new ConfigError(
      'KELIX_REMOTE_IMAGES is on but KELIX_REMOTE_IMAGE_HOSTS lists no host; list the hosts images may come from',
    ),
  )
  t.throws(() => loadServerConfig({}, ['--prot', '80']), new ConfigError('unknown option "--prot"; see --help'))
  t.throws(() => loadServerConfig({}, ['--port']), new ConfigError('--port needs a value'))
})

t.test('API keys have no flag, so they never show in a process list', async (t) => {
  t.throws(
    () => loadServerConfig({}, ['--api-keys', 'sk-x']),
    new ConfigError('unknown option "--api-keys"; see --help'),
  )
})

t.test('--help lists every setting with its variable and default', async (t) => {
  t.ok(wantsHelp(['--help']))
  t.ok(wantsHelp(['-h']))
  t.notOk(wantsHelp(['--port', '1']))
  const help = helpText()
  for (const s of SETTINGS) {
    t.match(help, s.env)
    t.match(help, s.default)
    if (s.flag !== undefined) t.match(help, s.flag)
  }
  t.match(help, /--port <value> +KELIX_PORT +8000 +listen port/)
  t.match(help, /--log-prompts +KELIX_LOG_PROMPTS +false/)
})
