/** Next-Block Prediction end to end on the tiny model: golden output, batch invariance, seeds, limits. */
import { readFile } from 'node:fs/promises'
import t from 'tap'
import type { Engine } from '../../src/engine/engine.js'
import { generateAll, type OfflineRequest } from '../../src/engine/offline.js'
import { options, tinyEngine, userTurn } from '../helpers/engine.js'
import { patternPng } from '../helpers/images.js'

interface Golden {
  prompt: string
  maxNewTokens: number
  promptTokens: number
  imagePositions: number
  tokenIds: number[]
  finishReason: string
}

async function imageChat(engine: Engine, text: string, seed: number, size = 224) {
  return engine.preparePrompt(userTurn(text, [await patternPng(size, size, seed)]), { addGenerationPrompt: true })
}

t.test('greedy output for a fixed prompt and image equals the stored golden tokens', async (t) => {
  const golden = JSON.parse(
    await readFile(new URL('../golden/greedy-image-chat.json', import.meta.url), 'utf8'),
  ) as Golden
  const { engine, dispose } = await tinyEngine()
  t.teardown(dispose)
  const prompt = await imageChat(engine, golden.prompt, 1)
  t.equal(prompt.blocks.length, golden.promptTokens)
  t.equal(prompt.imagePositions, golden.imagePositions)
  const result = (
    await generateAll(engine, [{ id: 'g', prompt, options: options({ maxNewTokens: golden.maxNewTokens }) }])
  ).get('g')
  t.same(result?.tokenIds, golden.tokenIds)
  t.equal(result?.finishReason, golden.finishReason)
  t.equal(engine.kv.sequences, 0, 'no cache left behind')
})

t.test('a greedy request gives the same tokens alone and inside a batch of 8 mixed requests', async (t) => {
  const { engine, dispose } = await tinyEngine()
  t.teardown(dispose)
  const target: OfflineRequest = {
    id: 'target',
    prompt: await imageChat(engine, 'Describe the scene in one sentence.', 2),
    options: options({ maxNewTokens: 20 }),
  }
  const alone = (await generateAll(engine, [target])).get('target')

  const others: OfflineRequest[] = [
    {
      id: 'short-text',
      prompt: await engine.preparePrompt(userTurn('Hi'), { addGenerationPrompt: true }),
      options: options({ maxNewTokens: 5 }),
    },
    {
      id: 'long-text',
      prompt: await engine.preparePrompt(
        userTurn('Tokens per second, time to first token and queue time are the numbers that matter. '.repeat(6)),
        { addGenerationPrompt: true },
      ),
      options: options({ maxNewTokens: 30 }),
    },
    {
      id: 'small-image',
      prompt: await imageChat(engine, 'What is this?', 3, 112),
      options: options({ maxNewTokens: 12 }),
    },
    {
      id: 'big-image',
      prompt: await imageChat(engine, 'Count the apples.', 4, 336),
      options: options({ maxNewTokens: 25 }),
    },
    {
      id: 'sampled',
      prompt: await engine.preparePrompt(userTurn('Tell me a story.'), { addGenerationPrompt: true }),
      options: options({ maxNewTokens: 18, sampling: { temperature: 0.9, topP: 0.8, seed: 7 } }),
    },
    {
      id: 'penalised',
      prompt: await engine.preparePrompt(userTurn('Repeat after me: la la la'), { addGenerationPrompt: true }),
      options: options({ maxNewTokens: 15, sampling: { presencePenalty: 1.5, frequencyPenalty: 0.5 } }),
    },
    {
      id: 'top-k',
      prompt: await imageChat(engine, 'And now?', 5),
      options: options({ maxNewTokens: 9, sampling: { temperature: 1.2, topK: 20, seed: 11 } }),
    },
  ]
  const batched = await generateAll(engine, [...others.slice(0, 3), target, ...others.slice(3)])
  t.same(batched.get('target')?.tokenIds, alone?.tokenIds)
  t.equal(batched.get('target')?.tokenIds.length, 20)
  t.equal(engine.kv.sequences, 0)
})

t.test('prefill in chunks gives the same greedy tokens as one prefill', async (t) => {
  // Without the prefix cache, so the second run computes its prompt again.
  const { engine, dispose } = await tinyEngine({ prefixCachePositions: 0 })
  t.teardown(dispose)
  const request: OfflineRequest = {
    id: 'c',
    prompt: await imageChat(engine, 'Chunk me.', 6),
    options: options({ maxNewTokens: 12 }),
  }
  const whole = (await generateAll(engine, [request])).get('c')
  const chunked = (await generateAll(engine, [request], { chunk: 16 })).get('c')
  t.same(chunked?.tokenIds, whole?.tokenIds)
  t.ok((chunked?.steps ?? 0) > (whole?.steps ?? 0), 'chunking took more steps')
})

t.test('the same seed gives the same sampled output alone and batched; another seed differs', async (t) => {
  const { engine, dispose } = await tinyEngine()
  t.teardown(dispose)
  const prompt = await engine.preparePrompt(userTurn('Write something.'), { addGenerationPrompt: true })
  const sampled = (id: string, seed: number): OfflineRequest => ({
    id,
    prompt,
    options: options({ maxNewTokens: 24, sampling: { temperature: 1, seed } }),
  })
  const alone = (await generateAll(engine, [sampled('a', 123)])).get('a')
  const batched = await generateAll(engine, [sampled('x', 999), sampled('a', 123), sampled('b', 124)])
  t.same(batched.get('a')?.tokenIds, alone?.tokenIds)
  t.notSame(batched.get('b')?.tokenIds, alone?.tokenIds)
  t.notSame(batched.get('x')?.tokenIds, alone?.tokenIds)
})

t.test('top_k = 1 equals greedy at any temperature', async (t) => {
  const { engine, dispose } = await tinyEngine()
  t.teardown(dispose)
  const prompt = await engine.preparePrompt(userTurn('Greedy or not?'), { addGenerationPrompt: true })
  const results = await generateAll(engine, [
    { id: 'greedy', prompt, options: options({ maxNewTokens: 16 }) },
    { id: 'top1', prompt, options: options({ maxNewTokens: 16, sampling: { temperature: 1.5, topK: 1, seed: 5 } }) },
  ])
  t.same(results.get('top1')?.tokenIds, results.get('greedy')?.tokenIds)
})

t.test('logit_bias −100 bans the token greedy would pick first', async (t) => {
  const { engine, dispose } = await tinyEngine()
  t.teardown(dispose)
  const prompt = await engine.preparePrompt(userTurn('Ban the first token.'), { addGenerationPrompt: true })
  const greedy = (await generateAll(engine, [{ id: 'g', prompt, options: options({ maxNewTokens: 12 }) }])).get('g')
  const banned = greedy?.tokenIds[0] as number
  const biased = (
    await generateAll(engine, [
      { id: 'b', prompt, options: options({ maxNewTokens: 12, sampling: { logitBias: new Map([[banned, -100]]) } }) },
    ])
  ).get('b')
  t.not(biased?.tokenIds[0], banned)
  t.notOk(biased?.tokenIds.includes(banned), `token ${banned} never appears`)
})

t.test('a stop string is cut and not emitted, and ends the sequence with stop', async (t) => {
  const { engine, dispose } = await tinyEngine()
  t.teardown(dispose)
  const prompt = await engine.preparePrompt(userTurn('Say something long.'), { addGenerationPrompt: true })
  const full = (await generateAll(engine, [{ id: 'f', prompt, options: options({ maxNewTokens: 30 }) }])).get('f')
  const text = full?.text ?? ''
  t.ok(text.length > 12, `the greedy answer has text: ${JSON.stringify(text)}`)
  // A stop string that spans the middle of the answer, taken from its own text.
  const stop = text.slice(5, 9)
  const cut = (
    await generateAll(engine, [{ id: 's', prompt, options: options({ maxNewTokens: 30, stop: [stop] }) }])
  ).get('s')
  t.equal(cut?.text, text.slice(0, text.indexOf(stop)))
  t.equal(cut?.finishReason, 'stop')
})

t.test('max tokens ends with length after exactly that many tokens', async (t) => {
  const { engine, dispose } = await tinyEngine()
  t.teardown(dispose)
  const prompt = await engine.preparePrompt(userTurn('Count.'), { addGenerationPrompt: true })
  const result = (await generateAll(engine, [{ id: 'm', prompt, options: options({ maxNewTokens: 7 }) }])).get('m')
  t.equal(result?.tokenIds.length, 7)
  t.equal(result?.finishReason, 'length')
})

t.test('logprobs come with each emitted token, chosen id first in its top list under greedy', async (t) => {
  const { engine, dispose } = await tinyEngine()
  t.teardown(dispose)
  const prompt = await engine.preparePrompt(userTurn('Logprobs please.'), { addGenerationPrompt: true })
  const result = (
    await generateAll(engine, [
      { id: 'l', prompt, options: options({ maxNewTokens: 6, sampling: { topLogprobs: 3 } }) },
    ])
  ).get('l')
  t.equal(result?.logprobs.length, 6)
  result?.logprobs.forEach((lp, i) => {
    t.equal(lp.id, result.tokenIds[i])
    t.equal(lp.top.length, 3)
    t.equal(lp.top[0]?.id, lp.id)
    t.ok(lp.logprob <= 0 && lp.logprob === lp.top[0]?.logprob)
  })
})
