/**
 * Automatic prefix caching on the tiny model: a prompt that starts like an
 * earlier one reuses its whole cached chunks, computes only the rest, and
 * generates exactly what an engine without the cache generates. On the CPU
 * (host cache) and on WebGPU (device cache; skipped where it does not load).
 */
import t from 'tap'
import { Engine } from '../../src/engine/engine.js'
import { PREFIX_CHUNK } from '../../src/engine/kv/prefix-cache.js'
import { loadModel, type LoadOptions } from '../../src/engine/model.js'
import { generateAll } from '../../src/engine/offline.js'
import { options, userTurn } from '../helpers/engine.js'
import { tinyModelDir } from '../helpers/tiny-model.js'
import { webgpuSkip } from '../helpers/webgpu.js'

const PROVIDERS: Array<{ name: string; load: LoadOptions; skip: string | false }> = [
  { name: 'host cache', load: { intraOpThreads: 1 }, skip: false },
  { name: 'device cache (WebGPU)', load: { executionProviders: ['webgpu'] }, skip: await webgpuSkip() },
]

const SHARED =
  'You are reviewing the capacity plan of an inference cluster with many replicas and a queue in front of it. '

async function answer(engine: Engine, id: string, text: string, chunk?: number) {
  const prompt = await engine.preparePrompt(userTurn(SHARED + text), { addGenerationPrompt: true })
  const before = { ...engine.prefixStats }
  const result = (
    await generateAll(
      engine,
      [{ id, prompt, options: options({ maxNewTokens: 12 }) }],
      chunk === undefined ? {} : { chunk },
    )
  ).get(id)
  return {
    tokens: result?.tokenIds,
    promptBlocks: prompt.blocks.length,
    reused: engine.prefixStats.reusedPositions - before.reusedPositions,
    steps: result?.steps,
  }
}

for (const { name, load, skip } of PROVIDERS) {
  t.test(
    `${name}: a prompt sharing a prefix reuses its whole chunks and generates the same tokens as without the cache`,
    { skip },
    async (t) => {
      const model = await loadModel(await tinyModelDir(), load)
      t.teardown(() => model.dispose())
      const cached = new Engine(model)
      const uncached = new Engine(model, { prefixCachePositions: 0 })

      const first = await answer(cached, 'a', 'What should we watch first?')
      t.equal(first.reused, 0, 'nothing to reuse for the first prompt')
      const second = await answer(cached, 'b', 'Which alert matters most?')
      const sharedBlocks = (await cached.preparePrompt(userTurn(SHARED), { addGenerationPrompt: false })).blocks.length
      t.ok(sharedBlocks >= 2 * PREFIX_CHUNK, `the shared text spans ${sharedBlocks} blocks, at least two chunks`)
      t.ok(second.reused >= PREFIX_CHUNK, `reused ${second.reused} positions`)
      t.equal(second.reused % PREFIX_CHUNK, 0, 'only whole chunks are reused')
      t.ok(second.reused <= sharedBlocks, 'never more than the shared blocks')
      t.same(
        second.tokens,
        (await answer(uncached, 'b', 'Which alert matters most?')).tokens,
        'same greedy tokens as without the cache',
      )

      const again = await answer(cached, 'c', 'What should we watch first?')
      t.equal(
        again.reused,
        Math.floor((again.promptBlocks - 1) / PREFIX_CHUNK) * PREFIX_CHUNK,
        'an identical prompt reuses every whole chunk but keeps the last block to compute',
      )
      t.same(again.tokens, first.tokens, 'and answers the same')
      t.equal(cached.kv.sequences, 0, 'no sequence cache left behind')
      t.equal(uncached.prefixStats.reusedPositions, 0, 'a zero-sized cache reuses nothing')
    },
  )

  t.test(
    `${name}: with a chunked prefill, cached blocks are filled at once and only the rest is computed in chunks`,
    { skip },
    async (t) => {
      const model = await loadModel(await tinyModelDir(), load)
      t.teardown(() => model.dispose())
      const engine = new Engine(model)
      const first = await answer(engine, 'a', 'How many replicas?', PREFIX_CHUNK)
      const second = await answer(engine, 'b', 'How many replicas?', PREFIX_CHUNK)
      t.same(second.tokens, first.tokens)
      const reusable = Math.floor((first.promptBlocks - 1) / PREFIX_CHUNK) * PREFIX_CHUNK
      t.equal(second.reused, reusable, `reused ${second.reused} positions`)
      const prefillSteps = (blocks: number) => Math.ceil(blocks / PREFIX_CHUNK)
      t.equal(
        (first.steps ?? 0) - (second.steps ?? 0),
        prefillSteps(first.promptBlocks) - prefillSteps(first.promptBlocks - reusable),
        'fewer prefill steps by the reused chunks',
      )
    },
  )
}
