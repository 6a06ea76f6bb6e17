/**
 * Weight-only quantized exports of the tiny checkpoint (`--precision int8` and
 * `int4`, the LM head at its int8 default, and int4 with an fp16 embedding
 * table and an int4 head): what the graphs hold, that each loads, chats and
 * runs an image request's token phase, that the vocabulary-part heads still
 * give that part of the whole head's logits, and how often greedy tokens agree
 * with the fp32 export's (reported, not required equal).
 */
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import ort from 'onnxruntime-node'
import t from 'tap'
import type { Precision } from '../../src/builder/precision.js'
import { TINY_CONFIG } from '../../src/builder/tiny.js'
import { Engine } from '../../src/engine/engine.js'
import { loadModel, type KelixModel } from '../../src/engine/model.js'
import { generateAll } from '../../src/engine/offline.js'
import { GREEDY } from '../../src/engine/types.js'
import { codebookPart, TEXT_PART, vocabPartRange } from '../../src/engine/vocab-parts.js'
import { options, userTurn } from '../helpers/engine.js'
import { readGraph } from '../helpers/onnx-files.js'
import { i64 } from '../helpers/tensors.js'
import { tinyModelDir, tinyModelWith } from '../helpers/tiny-model.js'

const VARIANTS: Record<string, Partial<Precision>> = {
  int8: { linear: 'int8' },
  int4: { linear: 'int4' },
  'int4, fp16 table, int4 head': { linear: 'int4', lmHead: 'int4', embedding: 'fp16' },
}
const PROMPTS = [
  'Hello there.',
  'What is the capital of France?',
  'Tell me a story about a cat.',
  'abc def ghi',
  'Count: 1 2 3 4 5',
  'Why is the sky blue?',
]
const config = TINY_CONFIG
const layers = config.llm.num_layers
const parts = [TEXT_PART, ...Array.from({ length: config.vocab.num_codebooks }, (_, k) => codebookPart(k))]

let fp32Dir: string
const dirs = new Map<string, string>()

t.before(async () => {
  fp32Dir = await tinyModelDir()
  for (const [name, precision] of Object.entries(VARIANTS)) dirs.set(name, await tinyModelWith(t, { precision }))
})

async function withModel<T>(dir: string, use: (model: KelixModel) => Promise<T>): Promise<T> {
  const model = await loadModel(dir, { intraOpThreads: 1 })
  try {
    return await use(model)
  } finally {
    await model.dispose()
  }
}

/** Every node of a graph and its subgraphs (the LM head's parts are `If` branches). */
function allNodes(graph: {
  node?: Array<{ opType?: string | null; domain?: string | null; attribute?: Array<{ g?: unknown }> | null }> | null
}): Array<{ opType?: string | null; domain?: string | null }> {
  return (graph.node ?? []).flatMap((node) => [
    node,
    ...(node.attribute ?? []).flatMap((a) => (a.g == null ? [] : allNodes(a.g as typeof graph))),
  ])
}

t.test(
  'config.json records the precisions; the graphs hold MatMulNBits, the table fp16 when asked; sizes against fp32',
  async (t) => {
    const dataBytes = async (dir: string, graph: string) => (await stat(join(dir, `${graph}.onnx.data`))).size
    const fp32 = { decoder: await dataBytes(fp32Dir, 'decoder'), block: await dataBytes(fp32Dir, 'block_decoder') }
    t.comment(`fp32: decoder.onnx.data ${fp32.decoder} bytes, block_decoder.onnx.data ${fp32.block} bytes`)
    for (const [name, given] of Object.entries(VARIANTS)) {
      const dir = dirs.get(name) as string
      const precision = { lmHead: 'int8', embedding: 'fp32', ...given }
      const written = await withModel(
        dir,
        async (model) => (model.config as unknown as { precision: unknown }).precision,
      )
      t.same(
        written,
        {
          linear: precision.linear,
          lm_head: precision.lmHead,
          embedding: precision.embedding,
          block_size: 32,
          accuracy_level: 4,
        },
        `${name}: config.json precision`,
      )

      const decoder = await readGraph(dir, 'decoder.onnx')
      const block = await readGraph(dir, 'block_decoder.onnx')
      for (const model of [decoder, block])
        t.ok(
          model.opsetImport.some((o) => o.domain === 'com.microsoft' && Number(o.version) === 1),
          `${name}: imports com.microsoft`,
        )
      const nbits = (graph: typeof decoder) =>
        allNodes(graph.graph as never).filter((n) => n.opType === 'MatMulNBits' && n.domain === 'com.microsoft').length
      t.equal(
        nbits(decoder),
        7 * layers,
        `${name}: decoder.onnx: q, k, v, o, w1, w2, w3 of every layer are MatMulNBits`,
      )
      t.equal(nbits(block), parts.length, `${name}: block_decoder.onnx: one MatMulNBits per vocabulary part`)
      const table = (graph: typeof decoder) =>
        graph.graph?.initializer?.find((i) => i.name === 'model.model.tok_embeddings.embed_tokens.weight')?.dataType
      t.same(
        [table(decoder), table(block)],
        Array(2).fill(precision.embedding === 'fp16' ? 10 : 1),
        `${name}: embedding tables are ${precision.embedding}`,
      )

      const sizes = { decoder: await dataBytes(dir, 'decoder'), block: await dataBytes(dir, 'block_decoder') }
      const ratio = (a: number, b: number) => `${a} bytes (${((100 * a) / b).toFixed(0)}% of fp32)`
      t.comment(
        `${name}: decoder.onnx.data ${ratio(sizes.decoder, fp32.decoder)}, block_decoder.onnx.data ${ratio(sizes.block, fp32.block)}`,
      )
      t.ok(sizes.decoder < fp32.decoder / 2 && sizes.block < fp32.block, `${name}: smaller than fp32`)
    }
  },
)

t.test('each quantized export loads and answers chats with text ids only', async (t) => {
  for (const [name, dir] of dirs) {
    await withModel(dir, async (model) => {
      const engine = new Engine(model)
      for (const text of PROMPTS.slice(0, 3)) {
        const result = (
          await generateAll(engine, [
            {
              id: 'a',
              prompt: await engine.preparePrompt(userTurn(text), { addGenerationPrompt: true }),
              options: options({ maxNewTokens: 12 }),
            },
          ])
        ).get('a')
        t.ok(
          result !== undefined && result.tokenIds.length > 0,
          `${name}: "${text}" answered (${result?.tokenIds.length} tokens, ${result?.finishReason})`,
        )
        t.ok(
          result?.tokenIds.every((id) => id < config.vocab.text_vocab_size && id !== config.special_tokens.eob),
          `${name}: text ids, never <eob>`,
        )
      }
    })
  }
})

t.test(
  "every vocabulary part's logits have the part's width and are that part of the whole quantized head's",
  async (t) => {
    const hidden = config.llm.hidden_size
    for (const [name, precision] of Object.entries(VARIANTS)) {
      const whole = await tinyModelWith(t, { precision, blockDecoder: { vocabParts: false } })
      const wholeSession = await ort.InferenceSession.create(join(whole, 'block_decoder.onnx'), {
        intraOpNumThreads: 1,
      })
      t.teardown(() => wholeSession.release())
      await withModel(dirs.get(name) as string, async (model) => {
        t.equal(model.blockDecoderHasParts, true)
        for (const [batch, slot] of [
          [1, 0],
          [3, 4],
        ] as const) {
          const feeds = {
            hidden_state: new ort.Tensor(
              'float32',
              Float32Array.from({ length: batch * hidden }, (_, i) => 2 * Math.sin(0.37 * i)),
              [batch, hidden],
            ),
            block_ids: i64(
              Array.from(
                { length: batch * slot },
                (_, i) => vocabPartRange(config, codebookPart(i % slot))[0] + ((i * 37) % config.vocab.codebook_size),
              ),
              [batch, slot],
            ),
          }
          const full = ((await wholeSession.run(feeds)).logits as ort.Tensor).data as Float32Array
          for (const part of parts) {
            const [lo, hi] = vocabPartRange(config, part)
            const logits = (await model.blockDecoder.run({ ...feeds, vocab_part: i64([part], []) }))
              .logits as ort.Tensor
            t.same(logits.dims, [batch, hi - lo], `${name}, part ${part}: [${batch}, ${hi - lo}]`)
            const got = logits.data as Float32Array
            let worst = 0
            for (let b = 0; b < batch; b++)
              for (let i = 0; i < hi - lo; i++)
                worst = Math.max(
                  worst,
                  Math.abs((got[b * (hi - lo) + i] as number) - (full[b * config.vocab.vocab_size + lo + i] as number)),
                )
            t.equal(
              worst,
              0,
              `${name}, batch ${batch}, slot ${slot}, part ${part}: the whole head's logits [${lo}, ${hi}), bit for bit`,
            )
          }
        }
      })
    }
  },
)

t.test("an image request's token phase completes the grid on each quantized export", async (t) => {
  const grid = config.image_generation.grid
  const { codebook_size: size, num_codebooks: books } = config.vocab
  for (const [name, dir] of dirs) {
    await withModel(dir, async (model) => {
      const engine = new Engine(model)
      engine.addImageGeneration(
        'img',
        await engine.preparePrompt(userTurn('A red cat on a chair.'), { addGenerationPrompt: true }),
        { sampling: { ...GREEDY, temperature: 1, seed: 5 }, grid },
      )
      const seq = engine.get('img')
      if (seq === undefined) throw new Error('not added')
      while (seq.finishReason === undefined)
        await engine.step([{ id: 'img', numBlocks: seq.blocks.length - seq.numComputed }])
      t.equal(seq.finishReason, 'stop', `${name}: the grammar ends the image`)
      const codes = seq.imageCodes()
      t.equal(codes.length, grid * grid * books, `${name}: ${grid}×${grid} positions of ${books} codes`)
      t.ok(
        codes.every((code) => code >= 0 && code < size),
        `${name}: every code within its sub-codebook`,
      )
      engine.release('img')
    })
  }
})

/**
 * The greedy chat token the model picks after each prefix of `sequence`'s
 * blocks (the chat rule: the text part, never <eob>), from one decoder run
 * over the whole sequence: the prefixes are the fp32 answer's, so each pick
 * is compared on the same context (teacher forcing).
 */
async function greedyAfterEachPrefix(model: KelixModel, blocks: Int32Array, from: number): Promise<number[]> {
  const { block_size: width, llm } = model.config
  const length = blocks.length / width
  const empty = new ort.Tensor('float32', new Float32Array(0), [1, llm.num_key_value_heads, 0, llm.head_dim])
  const past = Object.fromEntries(
    Array.from({ length: llm.num_layers }, (_, i) => [
      [`past_key_values.${i}.key`, empty],
      [`past_key_values.${i}.value`, empty],
    ]).flat(),
  )
  const positions = Array.from({ length }, (_, i) => i)
  const out = await model.decoder.run({
    ...past,
    block_ids: i64(Array.from(blocks), [1, length, width]),
    attention_mask: i64(Array(length).fill(1), [1, length]),
    position_ids: i64(positions, [1, length]),
  })
  const hidden = (out.hidden_states as ort.Tensor).data as Float32Array
  const rows = length - from
  const states = hidden.subarray(from * llm.hidden_size)
  const logits = (
    await model.blockDecoder.run({
      hidden_state: new ort.Tensor('float32', states, [rows, llm.hidden_size]),
      block_ids: i64([], [rows, 0]),
      vocab_part: i64([TEXT_PART], []),
    })
  ).logits as ort.Tensor
  const text = model.config.vocab.text_vocab_size
  const values = logits.data as Float32Array
  return Array.from({ length: rows }, (_, r) => {
    let best = -1
    for (let i = 0; i < text; i++)
      if (
        i !== model.config.special_tokens.eob &&
        (best < 0 || (values[r * text + i] as number) > (values[r * text + best] as number))
      )
        best = i
    return best
  })
}

t.test('greedy tokens against fp32: agreement reported (not required equal)', async (t) => {
  const maxNewTokens = 24
  const answers = await withModel(fp32Dir, async (model) => {
    const engine = new Engine(model)
    const out: Array<{ prompt: Int32Array; promptLength: number; tokens: number[] }> = []
    for (const text of PROMPTS) {
      const prompt = await engine.preparePrompt(userTurn(text), { addGenerationPrompt: true })
      const result = (await generateAll(engine, [{ id: 'a', prompt, options: options({ maxNewTokens }) }])).get('a')
      out.push({
        prompt: prompt.blocks.view(0, prompt.blocks.length).slice(),
        promptLength: prompt.blocks.length,
        tokens: result?.tokenIds ?? [],
      })
    }
    return out
  })
  const width = config.block_size
  const textBlock = (id: number) => [id, ...Array(width - 1).fill(config.special_tokens.eob)]
  // The fp32 answer's blocks, but its last token: the prefixes each next token is picked after.
  const contexts = answers.map((a) => Int32Array.from([...a.prompt, ...a.tokens.slice(0, -1).flatMap(textBlock)]))
  const fp32Picks = await withModel(fp32Dir, (model) =>
    Promise.all(
      contexts.map((blocks, i) => greedyAfterEachPrefix(model, blocks, (answers[i]?.promptLength as number) - 1)),
    ),
  )
  t.same(
    fp32Picks,
    answers.map((a) => a.tokens),
    'teacher-forced fp32 picks are the fp32 greedy answers (the comparison is sound)',
  )

  for (const [name, dir] of dirs) {
    const { forced, free } = await withModel(dir, async (model) => {
      const engine = new Engine(model)
      let forcedSame = 0
      let forcedTotal = 0
      let freeSame = 0
      let freeTotal = 0
      for (const [i, answer] of answers.entries()) {
        const picks = await greedyAfterEachPrefix(model, contexts[i] as Int32Array, answer.promptLength - 1)
        forcedSame += picks.filter((id, j) => id === answer.tokens[j]).length
        forcedTotal += answer.tokens.length
        const prompt = await engine.preparePrompt(userTurn(PROMPTS[i] as string), { addGenerationPrompt: true })
        const tokens =
          (await generateAll(engine, [{ id: 'a', prompt, options: options({ maxNewTokens }) }])).get('a')?.tokenIds ??
          []
        const longer = Math.max(tokens.length, answer.tokens.length)
        freeSame += Array.from({ length: longer }, (_, j) => tokens[j] === answer.tokens[j]).filter(Boolean).length
        freeTotal += longer
      }
      return { forced: forcedSame / forcedTotal, free: freeSame / freeTotal }
    })
    t.comment(
      `${name}: next-token agreement with fp32 on fp32's context ${(100 * forced).toFixed(0)}%, free-running greedy tokens equal at ${(100 * free).toFixed(0)}% of positions (${PROMPTS.length} prompts, ≤ ${maxNewTokens} tokens)`,
    )
    // A very low bar, far below what is measured: a wrongly packed weight agrees about 1 time in 500.
    t.ok(forced >= 0.5, `${name}: the next token on fp32's context agrees at least half the time`)
  }
})
