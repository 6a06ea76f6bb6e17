/**
 * A decoder exported the conventional way (whole `present.*` cache out, no
 * `present_delta.*`) loads and generates exactly what the default graph does,
 * in a batch whose rows join and leave the decode batch at different times.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { buildTinyModel } from '../../src/builder/build-model.js'
import { Engine } from '../../src/engine/engine.js'
import { loadModel } from '../../src/engine/model.js'
import { generateAll, type OfflineRequest } from '../../src/engine/offline.js'
import { options, tinyEngine, userTurn } from '../helpers/engine.js'

t.test('a present-only decoder gives the same greedy tokens as the default one', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kelix-present-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await buildTinyModel(dir, { cacheOutputs: 'present' })
  const conventional = await loadModel(dir, { intraOpThreads: 1 })
  t.teardown(() => conventional.dispose())
  t.equal(conventional.decoderHasDelta, false)
  const { engine, dispose } = await tinyEngine()
  t.teardown(dispose)

  const requests = async (e: Engine): Promise<OfflineRequest[]> => [
    {
      id: 'short',
      prompt: await e.preparePrompt(userTurn('Hi.'), { addGenerationPrompt: true }),
      options: options({ maxNewTokens: 6 }),
    },
    {
      id: 'long',
      prompt: await e.preparePrompt(userTurn('Tell me about inference servers and their batching.'), {
        addGenerationPrompt: true,
      }),
      options: options({ maxNewTokens: 20 }),
    },
    {
      id: 'mid',
      prompt: await e.preparePrompt(userTurn('Why cache keys?'), { addGenerationPrompt: true }),
      options: options({ maxNewTokens: 12 }),
    },
  ]
  const other = new Engine(conventional)
  const expected = await generateAll(engine, await requests(engine), { chunk: 5 })
  const got = await generateAll(other, await requests(other), { chunk: 5 })
  for (const id of ['short', 'long', 'mid']) {
    t.ok((expected.get(id)?.tokenIds.length ?? 0) > 0, `${id} generated tokens`)
    t.same(got.get(id)?.tokenIds, expected.get(id)?.tokenIds, `${id}: same tokens`)
  }
  t.equal(other.kv.sequences, 0, 'no cache left behind')
})
