/** The context rules, each stated once (src/engine/context-length.ts). */
import t from 'tap'
import { fitsContext, newTokenBudget, reachedLength } from '../../src/engine/context-length.js'

t.test('the budget is what was asked when it fits, else the rest of the context capped', async (t) => {
  t.equal(newTokenBudget({ context: 100, promptTokens: 10, requested: 90 }), 90, 'exactly the context')
  t.equal(newTokenBudget({ context: 100, promptTokens: 10, requested: undefined }), 90)
  t.equal(newTokenBudget({ context: 100, promptTokens: 10, requested: undefined, defaultCap: 16 }), 16)
  t.equal(newTokenBudget({ context: 100, promptTokens: 10, requested: 0 }), 0, '0 to score the prompt, when asked')
  t.equal(newTokenBudget({ context: 100, promptTokens: 100, requested: 0 }), 0)
})

t.test(
  'a prompt and budget over the context, or a prompt over the server limit, is context_length_exceeded with the numbers',
  async (t) => {
    t.throws(() => newTokenBudget({ context: 100, promptTokens: 10, requested: 91 }), {
      code: 'context_length_exceeded',
      message:
        "This model's maximum context length is 100 tokens. However, you requested 101 tokens (10 in the messages, 91 in the completion). Please reduce the length of the messages or completion.",
      fields: { limit: 100 },
    })
    t.throws(
      () => newTokenBudget({ context: 100, promptTokens: 100, requested: undefined }),
      { message: /you requested 101 tokens \(100 in the messages, 1 in the completion\)/ },
      'a default needs room for one block',
    )
    t.throws(
      () => newTokenBudget({ context: 100, promptTokens: 10, imagePositions: 4, requested: 1, maxPromptTokens: 8 }),
      {
        code: 'context_length_exceeded',
        message:
          'The prompt has 10 tokens (4 of them image positions); this server accepts at most 8. Please reduce the length of the messages.',
        fields: { limit: 8 },
      },
    )
  },
)

t.test('fitsContext and the length stop', async (t) => {
  t.ok(fitsContext(10, 90, 100))
  t.notOk(fitsContext(10, 91, 100))
  t.notOk(reachedLength(2, 3, 12, 100))
  t.ok(reachedLength(3, 3, 13, 100), 'max tokens reached')
  t.ok(reachedLength(2, 50, 100, 100), 'the context end reached first')
})
