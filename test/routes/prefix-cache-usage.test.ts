/**
 * usage.prompt_tokens_details.cached_tokens: the prompt positions a request
 * took from the prefix cache, through the official SDK, streaming or not.
 * With prefix caching off the engine reports none (shared-prompt-choices.test.ts).
 */
import t from 'tap'
import { MODEL, serve, tinyEngine } from './serve.js'

const question = 'Which numbers do operators watch in Grafana when a model server is under load?'
const ask = (content: string) => ({ model: MODEL, messages: [{ role: 'user' as const, content }], max_tokens: 3 })

t.test(
  'a repeated prompt reports the whole chunks it reused; a new question reuses only the shared template',
  async (t) => {
    const engine = await tinyEngine(t)
    const { openai } = await serve(t, engine)

    const first = await openai.chat.completions.create(ask(question))
    t.same(
      first.usage,
      { prompt_tokens: 61, completion_tokens: 3, total_tokens: 64, prompt_tokens_details: { cached_tokens: 0 } },
      'a cold cache reuses nothing',
    )

    const chunks = []
    for await (const chunk of await openai.chat.completions.create({
      ...ask(question),
      stream: true,
      stream_options: { include_usage: true },
    }))
      chunks.push(chunk)
    // The 60 positions before the last (which is always computed) hold 7 whole 8-position chunks.
    t.same(
      chunks.at(-1)?.usage,
      { prompt_tokens: 61, completion_tokens: 3, total_tokens: 64, prompt_tokens_details: { cached_tokens: 56 } },
      'the same prompt again',
    )

    const other = await openai.chat.completions.create(ask('Something else entirely.'))
    t.same(
      other.usage?.prompt_tokens_details,
      { cached_tokens: 16 },
      'only the chunk of the system prompt and template is shared',
    )
  },
)
