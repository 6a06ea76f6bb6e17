/**
 * Scoring a prompt (completions' echo with logprobs): each prompt token's
 * logprob is what generation reports for the same token after the same
 * text, computed in one prefill instead of token by token; max_tokens 0
 * reports the prompt alone; chunked prefill and the prefix cache change nothing.
 */
import t from 'tap'
import { Engine } from '../../src/engine/engine.js'
import { KelixError } from '../../src/errors/kelix-error.js'
import { loadModel, type KelixModel } from '../../src/engine/model.js'
import { generateAll } from '../../src/engine/offline.js'
import { options } from '../helpers/engine.js'
import { tinyModelDir } from '../helpers/tiny-model.js'

let model: KelixModel
t.before(async () => {
  model = await loadModel(await tinyModelDir(), { intraOpThreads: 1 })
})
t.teardown(() => model?.dispose())

const TEXT = 'The quick brown fox jumps over the lazy dog'

t.test('a scored prompt gives each token the logprob generation gave it', async (t) => {
  const engine = new Engine(model)
  const prompt = engine.preparePlainPrompt({ text: TEXT })
  const generated = (
    await generateAll(engine, [
      { id: 'g', prompt, options: options({ maxNewTokens: 6, sampling: { topLogprobs: 3 } }) },
    ])
  ).get('g')
  const ids = [
    ...Array.from({ length: prompt.blocks.length }, (_, i) => prompt.blocks.firstId(i)),
    ...(generated?.tokenIds ?? []),
  ]
  for (const chunk of [Number.POSITIVE_INFINITY, 3]) {
    const scored = (
      await generateAll(
        engine,
        [
          {
            id: 's',
            prompt: engine.preparePlainPrompt({ ids }),
            options: { ...options({ maxNewTokens: 0 }), echo: { logprobs: 3 } },
          },
        ],
        { chunk },
      )
    ).get('s')
    t.equal(scored?.finishReason, 'length')
    t.same(scored?.tokenIds, [], 'nothing generated')
    t.equal(scored?.prompt?.text, engine.tokenizer.decode(ids))
    const logprobs = scored?.prompt?.logprobs ?? []
    t.equal(logprobs.length, ids.length, 'one entry per prompt token')
    t.same(
      logprobs[0],
      {
        id: ids[0],
        text: engine.tokenizer.tokenText(ids[0] as number),
        bytes: [...engine.tokenizer.tokenBytes(ids[0] as number)],
        logprob: null,
        top: [],
      },
      'the first token has none',
    )
    for (const [k, g] of (generated?.logprobs ?? []).entries()) {
      const s = logprobs[prompt.blocks.length + k]
      t.equal(s?.id, g.id)
      t.ok(Math.abs((s?.logprob ?? 0) - g.logprob) < 1e-4, `chunk ${chunk}, token ${k}: ${s?.logprob} vs ${g.logprob}`)
      t.same(
        s?.top.map((x) => x.id),
        g.top.map((x) => x.id),
        'the same alternatives',
      )
    }
    for (const lp of logprobs.slice(1)) t.ok((lp?.logprob ?? 1) <= 0 && (lp?.top.length ?? 0) === 3)
  }
})

t.test('echo without logprobs reports the text; generation goes on after it', async (t) => {
  const engine = new Engine(model)
  const result = (
    await generateAll(engine, [
      {
        id: 'e',
        prompt: engine.preparePlainPrompt({ text: TEXT }),
        options: { ...options({ maxNewTokens: 3 }), echo: { logprobs: undefined } },
      },
    ])
  ).get('e')
  t.same(result?.prompt, { text: TEXT, logprobs: undefined })
  t.equal(result?.tokenIds.length, 3)
})

t.test('plain prompts: empty or with an id outside the text vocabulary are invalid_prompt', async (t) => {
  const engine = new Engine(model)
  const codeOf = (f: () => unknown) => {
    try {
      f()
    } catch (err) {
      return `${(err as KelixError).code}: ${(err as Error).message}`
    }
    return 'no error'
  }
  const text = model.config.vocab.text_vocab_size
  t.equal(
    codeOf(() => engine.preparePlainPrompt({ text: '' })),
    'invalid_prompt: the prompt is empty',
  )
  t.equal(
    codeOf(() => engine.preparePlainPrompt({ ids: [1, text] })),
    `invalid_prompt: prompt token 1 is ${text}, not a text token id (0 to ${text - 1})`,
  )
  t.equal(
    codeOf(() => engine.preparePlainPrompt({ ids: [1, -2] })),
    `invalid_prompt: prompt token 1 is -2, not a text token id (0 to ${text - 1})`,
  )
  t.type(KelixError, 'function')
})
