/**
 * The converted reference checkpoint served end to end: a real engine worker,
 * real HTTP, the official openai SDK. Each reference chat (text, and an image
 * sent as a data: URL) at temperature 0 gives the reference's tokens, which the
 * logprobs identify by their bytes, and reports its prompt positions.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import t from 'tap'
import { startEngine } from '../../src/batching/http-thread/engine-client.js'
import { convertCheckpoint } from '../../src/convert/convert.js'
import { parseConfig } from '../../src/engine/model-config.js'
import { TextTokenizer } from '../../src/engine/text/tokenizer.js'
import { buildApp } from '../../src/server/app.js'
import { readReference, REFERENCE_CHECKPOINT, referenceImage, type KelixReference } from '../helpers/kelix-reference.js'

const ref = readReference()

t.test('each reference chat through the API gives the reference tokens and prompt size', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'kelix-reference-served-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  const dir = join(root, 'kelix-reference')
  await convertCheckpoint({ from: REFERENCE_CHECKPOINT, out: dir })
  const engine = await startEngine({ modelDir: dir, intraOpThreads: 1 })
  t.teardown(() => engine.close())
  const app = await buildApp({
    logger: false,
    engine,
    model: { id: 'kelix-reference', aliases: [], created: 1700000000 },
    systemFingerprint: 'fp_test',
  })
  t.teardown(() => app.close())
  const openai = new OpenAI({
    baseURL: `${await app.listen({ host: '127.0.0.1', port: 0 })}/v1`,
    apiKey: 'unused',
    maxRetries: 0,
  })

  const config = parseConfig(await readFile(join(dir, 'config.json'), 'utf8'))
  const tokenizer = new TextTokenizer(
    {
      tokenizerJson: JSON.parse(await readFile(join(dir, 'tokenizer.json'), 'utf8')),
      tokenizerConfig: JSON.parse(await readFile(join(dir, 'tokenizer_config.json'), 'utf8')),
    },
    config,
  )
  t.ok(
    ref.chats.some((c) => ref.prompts[c.prompt]?.images.length),
    'an image chat is among them',
  )
  for (const chat of ref.chats) {
    const prompt = ref.prompts[chat.prompt] as KelixReference['prompts'][string]
    const completion = await openai.chat.completions.create({
      model: 'kelix-reference',
      messages: await apiMessages(prompt.messages),
      temperature: 0,
      max_tokens: 16,
      logprobs: true,
    })
    const choice = completion.choices[0]
    // The logprobs cover every generated id, the final <|im_end|> of a stopped answer included.
    t.same(
      choice?.logprobs?.content?.map((c) => c.bytes),
      chat.tokens.map((id) => [...tokenizer.tokenBytes(id)]),
      `${chat.prompt}: the reference tokens, by their bytes`,
    )
    t.equal(choice?.message.content, tokenizer.decode(chat.tokens, { skipSpecialTokens: true }), `${chat.prompt}: text`)
    t.equal(choice?.finish_reason, chat.finish_reason, `${chat.prompt}: finish reason`)
    t.same(
      [completion.usage?.prompt_tokens, completion.usage?.completion_tokens],
      [prompt.blocks.length, chat.tokens.length],
      `${chat.prompt}: usage`,
    )
  }
})

/** The reference's messages as OpenAI's: images as PNG data: URLs. */
async function apiMessages(
  messages: KelixReference['prompts'][string]['messages'],
): Promise<OpenAI.ChatCompletionMessageParam[]> {
  return Promise.all(
    messages.map(async (m) => {
      if (typeof m.content === 'string')
        return { role: m.role, content: m.content } as OpenAI.ChatCompletionMessageParam
      const parts = await Promise.all(
        m.content.map(async (part): Promise<OpenAI.ChatCompletionContentPart> =>
          part.type === 'image'
            ? {
                type: 'image_url',
                image_url: {
                  url: `data:image/png;base64,${(await referenceImage(part.image as string)).toString('base64')}`,
                },
              }
            : { type: 'text', text: part.text as string },
        ),
      )
      return { role: 'user', content: parts } as OpenAI.ChatCompletionMessageParam
    }),
  )
}
