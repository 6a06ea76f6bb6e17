/**
 * The scheduling limits: one default, one check of how they combine, used by
 * the server's configuration (naming flags and variables), the engine client
 * and the scheduler; a bad combination is refused at start-up, never corrected.
 */
import t from 'tap'
import { Scheduler } from '../../src/batching/engine-thread/scheduler/index.js'
import { startEngine } from '../../src/batching/http-thread/engine-client.js'
import { DEFAULT_LIMITS, limitsProblem } from '../../src/batching/limits.js'
import {
  ConfigError,
  helpText,
  limitSettingNames,
  loadServerConfig,
  schedulingLimits,
} from '../../src/server/config.js'

t.test('the defaults are one constant, which the configuration and its help use', async (t) => {
  t.same(DEFAULT_LIMITS, { maxNumSeqs: 32, maxBatchedTokens: 512, kvCapacity: 65_536, pageSize: 16 })
  t.same(schedulingLimits(loadServerConfig({})), DEFAULT_LIMITS)
  t.match(helpText(), new RegExp(`--max-num-seqs <value> +KELIX_MAX_NUM_SEQS +${DEFAULT_LIMITS.maxNumSeqs} `))
  t.match(
    helpText(),
    new RegExp(`--max-batched-tokens <value> +KELIX_MAX_BATCHED_TOKENS +${DEFAULT_LIMITS.maxBatchedTokens} `),
  )
  t.match(helpText(), new RegExp(`--kv-capacity <value> +KELIX_KV_CAPACITY +${DEFAULT_LIMITS.kvCapacity} `))
  t.equal(limitsProblem(DEFAULT_LIMITS, 4096), undefined)
})

t.test('each bad combination is one line naming the limits as the caller calls them', async (t) => {
  const limits = { ...DEFAULT_LIMITS }
  t.equal(
    limitsProblem({ ...limits, maxNumSeqs: 64, maxBatchedTokens: 32 }, undefined),
    "maxBatchedTokens (32) must be >= maxNumSeqs (64): every running sequence's decode must fit in one step",
  )
  t.equal(
    limitsProblem({ ...limits, kvCapacity: 8 }, undefined, { kvCapacity: '--kv-capacity' }),
    '--kv-capacity (8) must be >= pageSize (16): the KV cache must hold at least one page',
  )
  t.equal(
    limitsProblem({ ...limits, kvCapacity: 4095 }, 4096, { kvCapacity: 'KELIX_KV_CAPACITY' }),
    "KELIX_KV_CAPACITY (4095) must hold the model's context (4096) alone, in whole pages of 16 (4080 usable positions): one full-length sequence must fit the KV cache",
  )
  t.equal(limitsProblem({ ...limits, kvCapacity: 4096 }, 4096), undefined, 'exactly one context fits')
  t.equal(
    limitsProblem({ ...limits, kvCapacity: 8 }, undefined),
    limitsProblem({ ...limits, kvCapacity: 8 }, 4096),
    'a capacity under one page is refused before the context is known',
  )
})

t.test('the configuration refuses a bad combination at load, naming each setting as it was given', async (t) => {
  t.throws(
    () => loadServerConfig({ KELIX_MAX_NUM_SEQS: '64', KELIX_MAX_BATCHED_TOKENS: '32' }),
    new ConfigError(
      "KELIX_MAX_BATCHED_TOKENS (32) must be >= KELIX_MAX_NUM_SEQS (64): every running sequence's decode must fit in one step",
    ),
  )
  t.throws(
    () => loadServerConfig({}, ['--max-num-seqs', '1024']),
    new ConfigError(
      "KELIX_MAX_BATCHED_TOKENS (512) must be >= --max-num-seqs (1024): every running sequence's decode must fit in one step",
    ),
    'no longer raised silently to 1024',
  )
  t.throws(
    () => loadServerConfig({}, ['--kv-capacity=8']),
    new ConfigError('--kv-capacity (8) must be >= the KV page size (16): the KV cache must hold at least one page'),
    'no longer raised silently to a page',
  )
  t.same(schedulingLimits(loadServerConfig({}, ['--max-num-seqs', '64', '--max-batched-tokens', '64'])), {
    ...DEFAULT_LIMITS,
    maxNumSeqs: 64,
    maxBatchedTokens: 64,
  })
})

t.test('the scheduler refuses the same combinations by its option names', async (t) => {
  const config = { ...DEFAULT_LIMITS, maxModelLength: 4096 }
  t.throws(() => new Scheduler({ ...config, maxNumSeqs: 64, maxBatchedTokens: 32 }), {
    code: 'SCHEDULER_CONFIG_INVALID',
    message: /maxBatchedTokens \(32\) must be >= maxNumSeqs \(64\)/,
  })
  t.throws(() => new Scheduler({ ...config, kvCapacity: 4000 }), {
    code: 'SCHEDULER_CONFIG_INVALID',
    message: /kvCapacity \(4000\) must hold maxModelLength \(4096\) alone/,
  })
})

t.test('the engine client refuses a bad combination before it starts a worker', async (t) => {
  await t.rejects(
    startEngine({
      modelDir: '/nonexistent',
      limits: { maxNumSeqs: 64, maxBatchedTokens: 32 },
      limitNames: limitSettingNames(),
    }),
    {
      name: 'KelixError',
      code: 'SCHEDULER_CONFIG_INVALID',
      message:
        "--max-batched-tokens/KELIX_MAX_BATCHED_TOKENS (32) must be >= --max-num-seqs/KELIX_MAX_NUM_SEQS (64): every running sequence's decode must fit in one step",
    },
  )
})
