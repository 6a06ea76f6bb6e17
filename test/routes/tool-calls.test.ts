/**
 * Function tools through the official SDK on the tiny model: a required or
 * named call comes back as `tool_calls` whose arguments validate against the
 * tool's parameters, streamed (SDK helper and raw chunks) and not; the
 * choices the template cannot honour are 400s; a history with calls and
 * results is the same prompt as its Qwen-convention text.
 */
import { Ajv } from 'ajv'
import t, { type Test } from 'tap'
import { ScriptedEngineClient } from '../helpers/scripted-engine-client.js'
import { MODEL, serve, tinyEngine } from './serve.js'

const engine = await tinyEngine(t)

const WEATHER = {
  type: 'object',
  properties: { city: { enum: ['Paris', 'Oslo', 'Lima'] }, days: { type: 'integer', minimum: 1, maximum: 7 } },
  required: ['city', 'days'],
  additionalProperties: false,
}
const TIME = {
  type: 'object',
  properties: { zone: { type: 'string', maxLength: 5 } },
  required: ['zone'],
  additionalProperties: false,
}
const tools = [
  {
    type: 'function' as const,
    function: { name: 'get_weather', description: 'Weather forecast', parameters: WEATHER },
  },
  { type: 'function' as const, function: { name: 'get_time', parameters: TIME } },
]
const validArgs: Record<string, ReturnType<Ajv['compile']>> = {
  get_weather: new Ajv().compile(WEATHER),
  get_time: new Ajv().compile(TIME),
}
const ask = {
  model: MODEL,
  messages: [{ role: 'user' as const, content: 'Weather in Paris?' }],
  max_tokens: 120,
  temperature: 1,
  tools,
}

type Call = { id: string; type: string; function: { name: string; arguments: string } }
function checkCalls(t: Test, calls: Call[] | undefined, only?: string): void {
  t.ok(calls !== undefined && calls.length > 0, 'at least one call')
  for (const call of calls ?? []) {
    t.match(call, { id: /^call_[0-9a-f]{24}$/, type: 'function' })
    if (only !== undefined) t.equal(call.function.name, only)
    const validate = validArgs[call.function.name]
    t.ok(validate?.(JSON.parse(call.function.arguments)), `${call.function.name}(${call.function.arguments})`)
  }
}

t.test('tool_choice required: the answer is one or more calls to the tools, with valid arguments', async (t) => {
  const { openai } = await serve(t, engine)
  for (const seed of [1, 2, 3]) {
    const completion = await openai.chat.completions.create({ ...ask, seed, tool_choice: 'required' })
    const choice = completion.choices[0]
    t.equal(choice?.finish_reason, 'tool_calls')
    t.equal(choice?.message.content, null)
    checkCalls(t, choice?.message.tool_calls as Call[], undefined)
  }
})

t.test('a named function with parallel_tool_calls false: exactly one call to it', async (t) => {
  const { openai } = await serve(t, engine)
  for (const seed of [4, 5]) {
    const completion = await openai.chat.completions.create({
      ...ask,
      seed,
      tool_choice: { type: 'function', function: { name: 'get_time' } },
      parallel_tool_calls: false,
    })
    const calls = completion.choices[0]?.message.tool_calls as Call[]
    t.equal(calls.length, 1)
    checkCalls(t, calls, 'get_time')
  }
})

t.test('streamed: the SDK helper assembles the same calls as the whole answer, from tool-call deltas', async (t) => {
  const { openai, post } = await serve(t, engine)
  const body = { ...ask, seed: 6, tool_choice: { type: 'function' as const, function: { name: 'get_weather' } } }
  const whole = await openai.chat.completions.create(body)
  const final = await openai.chat.completions.stream(body).finalChatCompletion()
  const strip = (calls: Call[] | undefined) => calls?.map((c) => c.function)
  t.same(strip(final.choices[0]?.message.tool_calls as Call[]), strip(whole.choices[0]?.message.tool_calls as Call[]))
  t.equal(final.choices[0]?.finish_reason, 'tool_calls')
  checkCalls(t, final.choices[0]?.message.tool_calls as Call[], 'get_weather')

  const raw = await (await post({ ...body, stream: true })).text()
  const chunks = raw
    .split('\n\n')
    .filter((e) => e.startsWith('data: {'))
    .map(
      (e) =>
        JSON.parse(e.slice(6)) as { choices: Array<{ delta: Record<string, unknown>; finish_reason: string | null }> },
    )
  const deltas = chunks.flatMap((c) => c.choices.map((ch) => ch.delta))
  t.same(deltas[0], { role: 'assistant', content: '' })
  t.match(deltas[1], {
    tool_calls: [{ index: 0, id: /^call_/, type: 'function', function: { name: 'get_weather', arguments: String } }],
  })
  t.equal(deltas.filter((d) => 'content' in d && d.content !== '').length, 0, 'no content deltas')
  t.equal(chunks.at(-1)?.choices[0]?.finish_reason, 'tool_calls')
})

t.test('tool_choice none answers in text', async (t) => {
  const { openai } = await serve(t, engine)
  const completion = await openai.chat.completions.create({ ...ask, seed: 7, max_tokens: 5, tool_choice: 'none' })
  t.equal(typeof completion.choices[0]?.message.content, 'string')
  t.equal(completion.choices[0]?.message.tool_calls, undefined)
  t.not(completion.choices[0]?.finish_reason, 'tool_calls')
})

t.test('what cannot be honoured is a 400 naming its parameter', async (t) => {
  const { post } = await serve(t, engine)
  const cases: Array<{ body: object; param: string; message: RegExp }> = [
    { body: { ...ask }, param: 'tool_choice', message: /'auto' needs a chat template that presents the tools/ },
    { body: { ...ask, tool_choice: 'auto' }, param: 'tool_choice', message: /'auto' needs a chat template/ },
    {
      body: { ...ask, tools: undefined, tool_choice: 'required' },
      param: 'tool_choice',
      message: /only allowed when 'tools' are given/,
    },
    {
      body: { ...ask, tool_choice: { type: 'function', function: { name: 'nope' } } },
      param: 'tool_choice.function.name',
      message: /no tool is named 'nope'; the tools are 'get_weather', 'get_time'/,
    },
    {
      body: { ...ask, tools: [tools[0], tools[0]], tool_choice: 'required' },
      param: 'tools',
      message: /'get_weather' appears more than once/,
    },
    {
      body: { ...ask, tool_choice: 'required', response_format: { type: 'json_object' } },
      param: 'response_format',
      message: /cannot be combined with a required tool call/,
    },
    {
      body: {
        ...ask,
        tool_choice: 'required',
        tools: [
          {
            type: 'function',
            function: { name: 'bad', parameters: { type: 'object', properties: { a: { type: 'no-such-type' } } } },
          },
        ],
      },
      param: 'tools',
      message:
        /^Invalid 'tools': the JSON schema cannot be used for constrained decoding: Unsupported type "no-such-type"$/,
    },
  ]
  for (const c of cases) {
    const res = await post({ ...c.body, stream: true })
    t.equal(res.status, 400, c.param)
    t.match(((await res.json()) as { error: object }).error, {
      param: c.param,
      code: 'invalid_value',
      type: 'invalid_request_error',
      message: c.message,
    })
  }
})

t.test('a history with calls and results is the prompt its Qwen-convention text gives', async (t) => {
  const { openai } = await serve(t, engine)
  const call = {
    id: 'call_1',
    type: 'function' as const,
    function: { name: 'get_weather', arguments: '{"city":"Paris","days":2}' },
  }
  const withTools = await openai.chat.completions.create({
    model: MODEL,
    max_tokens: 6,
    temperature: 0,
    messages: [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: null, tool_calls: [call] },
      { role: 'tool', tool_call_id: 'call_1', content: 'sunny, 21 C' },
    ],
  })
  const asText = await openai.chat.completions.create({
    model: MODEL,
    max_tokens: 6,
    temperature: 0,
    messages: [
      { role: 'user', content: 'Weather in Paris?' },
      {
        role: 'assistant',
        content: '<tool_call>\n{"name":"get_weather","arguments":{"city":"Paris","days":2}}\n</tool_call>',
      },
      { role: 'user', content: '<tool_response>\nsunny, 21 C\n</tool_response>' },
    ],
  })
  t.equal(withTools.usage?.prompt_tokens, asText.usage?.prompt_tokens)
  t.equal(withTools.choices[0]?.message.content, asText.choices[0]?.message.content)
})

t.test('an assistant message with neither content nor tool_calls is a 400', async (t) => {
  const scripted = new ScriptedEngineClient()
  const { post } = await serve(t, scripted)
  const res = await post({ model: MODEL, messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant' }] })
  t.equal(res.status, 400)
  t.same(await res.json(), {
    error: {
      message: "Missing required parameter: 'messages[1].content' (an assistant message needs content or tool_calls).",
      type: 'invalid_request_error',
      param: 'messages[1].content',
      code: 'missing_required_parameter',
    },
  })
  t.same(scripted.calls, [])
})
