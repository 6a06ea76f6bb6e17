/** The token phase of image generation: the grammar makes every result a complete grid. */
import t from 'tap'
import { generateAll } from '../../src/engine/offline.js'
import { GREEDY } from '../../src/engine/types.js'
import { tinyEngine } from '../helpers/engine.js'

t.test('the generated span has exactly the grid rows and blocks, every code in its sub-codebook', async (t) => {
  const { engine, dispose } = await tinyEngine()
  t.teardown(dispose)
  const config = engine.model.config
  const {
    mm_pos_start: open,
    mm_pos_end: close,
    vision_start: visionStart,
    vision_end: visionEnd,
  } = config.special_tokens
  const { visual_id_offset: offset, codebook_size: size, num_codebooks: books } = config.vocab
  const prompt = await engine.preparePrompt([{ role: 'user', content: 'A red cat on a chair.' }], {
    addGenerationPrompt: true,
  })
  const grid = 6
  for (const seed of [1, 2]) {
    const id = `img${seed}`
    engine.addImageGeneration(id, prompt, { sampling: { ...GREEDY, temperature: 1, seed }, grid })
    const seq = engine.get(id)
    if (seq === undefined) throw new Error('not added')
    t.equal(seq.blocks.firstId(seq.promptLength - 1), visionStart, 'the prompt ends with <|vision_start|>')
    while (seq.finishReason === undefined) await engine.step([{ id, numBlocks: seq.blocks.length - seq.numComputed }])
    t.equal(seq.finishReason, 'stop')

    const generated = Array.from({ length: seq.blocks.length - seq.promptLength }, (_, i) =>
      seq.blocks.view(seq.promptLength + i, 1),
    )
    let cursor = 0
    for (let row = 0; row < grid; row++) {
      const marker: number[] = []
      while (generated[cursor]?.[0] !== close) marker.push(generated[cursor++]?.[0] as number)
      cursor++
      t.equal(marker[0], open, `row ${row} starts with <|mm_pos_start|>`)
      t.equal(engine.tokenizer.decode(marker.slice(1)), `${row},${grid}`, `row ${row} marker text`)
      for (let col = 0; col < grid; col++) {
        const block = generated[cursor++] as Int32Array
        for (let k = 0; k < books; k++) {
          const code = (block[k] as number) - offset - k * size
          t.ok(code >= 0 && code < size, `row ${row} col ${col} slot ${k} in sub-codebook ${k}`)
        }
        t.equal(block[books], config.special_tokens.eob)
      }
    }
    t.same(
      Array.from(generated[cursor++] ?? []),
      [visionEnd, ...Array(8).fill(config.special_tokens.eob)],
      'then <|vision_end|>',
    )
    t.equal(cursor, generated.length, 'and nothing after it')
    t.equal(seq.imageCodes().length, grid * grid * books)

    const capture = seq.capture
    const hidden = config.llm.hidden_size
    t.equal(capture?.states.length, (generated.length + 1) * hidden, 'one hidden state per span position')
    const rowsFilled = Array.from({ length: generated.length + 1 }, (_, i) =>
      capture?.states.subarray(i * hidden, (i + 1) * hidden).some((v) => v !== 0),
    )
    t.ok(rowsFilled.every(Boolean), 'every span position, <|vision_start|> to <|vision_end|>, was captured')
    engine.release(id)
  }
  t.equal(engine.kv.sequences, 0)
})

t.test('an image generation and chat answers share one batch without changing the chat tokens', async (t) => {
  const { engine, dispose } = await tinyEngine()
  t.teardown(dispose)
  const chat = await engine.preparePrompt([{ role: 'user', content: 'Hello there.' }], { addGenerationPrompt: true })
  const options = { sampling: GREEDY, maxNewTokens: 16, stop: [], stopTokenIds: [] }
  const alone = (await generateAll(engine, [{ id: 'c', prompt: chat, options }])).get('c')
  engine.addImageGeneration(
    'img',
    await engine.preparePrompt([{ role: 'user', content: 'A dog.' }], { addGenerationPrompt: true }),
    { sampling: { ...GREEDY, temperature: 1, seed: 3 }, grid: 6 },
  )
  engine.add('c2', chat, options)
  const tokens: number[] = []
  for (;;) {
    const plan = ['img', 'c2'].flatMap((id) => {
      const seq = engine.get(id)
      return seq === undefined || seq.finishReason !== undefined
        ? []
        : [{ id, numBlocks: seq.blocks.length - seq.numComputed }]
    })
    if (plan.length === 0) break
    const outputs = await engine.step(plan)
    tokens.push(...(outputs.get('c2')?.tokenIds ?? []))
  }
  t.same(tokens, alone?.tokenIds)
  engine.release('img')
  engine.release('c2')
})
