/**
 * Function tools. Kelix's chat template describes no tools, so the model is
 * never asked to choose between answering and calling: a call is made by
 * constraining the answer to one (`tool_choice: "required"` or a named
 * function), token by token, with the grammar of
 *
 *   {"name":"<one of the tools>","arguments":{…its parameters…}}
 *
 * or, when parallel calls are allowed (`parallel_tool_calls`, default true,
 * with "required"), a JSON array of one or more such calls. The answer is then
 * returned as `tool_calls` with `finish_reason: "tool_calls"`.
 *
 * `tool_choice: "auto"` (the default once tools are given) would need the
 * template to present the tools to the model: it is refused with a 400 that
 * says so, rather than guessed. `"none"` answers in text, as without tools.
 *
 * In the history, an assistant turn's calls and a tool's result are written in
 * Qwen2.5's tool convention (`<tool_call>` in the assistant turn,
 * `<tool_response>` in a user turn), the closest the model's family knows.
 */
import type { ResponseFormat } from '../../batching/client-types.js'
import type { ChatRequestBody, FunctionToolBody, MessageBody } from './schema.js'
import { ToolCallStream } from './tool-call-stream.js'
import { KelixError } from '../../errors/kelix-error.js'

/** How a request's answers become tool calls; undefined when they are text. */
export interface ToolCalling {
  format: ResponseFormat
  /** The answer is an array of calls (else one call). */
  parallel: boolean
}

export interface ToolCall {
  id: string
  type: 'function'
  function: { name: string; arguments: string }
}

/** The checks between `tools`, `tool_choice`, `parallel_tool_calls` and `response_format`; the calling mode, if any. */
export function toolCalling(body: ChatRequestBody): ToolCalling | undefined {
  const tools = body.tools ?? []
  const choice = body.tool_choice ?? (tools.length > 0 ? 'auto' : 'none')
  if (tools.length === 0) {
    if (body.tool_choice !== undefined && body.tool_choice !== 'none')
      throw new KelixError('invalid_value', "Invalid 'tool_choice': it is only allowed when 'tools' are given.", {
        param: 'tool_choice',
      })
    return undefined
  }
  const names = tools.map((t) => t.function.name)
  const twice = names.find((name, i) => names.indexOf(name) !== i)
  if (twice !== undefined)
    throw new KelixError('invalid_value', `Invalid 'tools': the function name '${twice}' appears more than once.`, {
      param: 'tools',
    })
  if (choice === 'none') return undefined
  if (choice === 'auto') {
    throw new KelixError(
      'invalid_value',
      "Invalid 'tool_choice': 'auto' needs a chat template that presents the tools to the model, and this model's does not. Set tool_choice to 'required' (the answer is a call to one of the tools) or to {\"type\": \"function\", \"function\": {\"name\": …}}, or to 'none' for a text answer.",
      { param: 'tool_choice' },
    )
  }
  if (body.response_format !== undefined && body.response_format.type !== 'text') {
    throw new KelixError(
      'invalid_value',
      "Invalid 'response_format': a JSON response format cannot be combined with a required tool call (the answer is the call).",
      { param: 'response_format' },
    )
  }
  const named = choice === 'required' ? undefined : choice.function.name
  if (named !== undefined && !names.includes(named)) {
    throw new KelixError(
      'invalid_value',
      `Invalid 'tool_choice.function.name': no tool is named '${named}'; the tools are ${names.map((n) => `'${n}'`).join(', ')}.`,
      { param: 'tool_choice.function.name' },
    )
  }
  const callable = named === undefined ? tools : tools.filter((t) => t.function.name === named)
  const call = callable.length === 1 ? callSchema(callable[0] as FunctionToolBody) : { anyOf: callable.map(callSchema) }
  const parallel = named === undefined && body.parallel_tool_calls !== false
  const schema = parallel ? { type: 'array', items: call, minItems: 1 } : call
  return { format: { type: 'json_schema', schema, strict: true }, parallel }
}

function callSchema(tool: FunctionToolBody): Record<string, unknown> {
  return {
    type: 'object',
    properties: { name: { const: tool.function.name }, arguments: tool.function.parameters ?? { type: 'object' } },
    required: ['name', 'arguments'],
    additionalProperties: false,
  }
}

/** The calls in a complete constrained answer, arguments as the model wrote them (what a stream sends too). */
export function parseToolCalls(text: string, calling: ToolCalling): ToolCall[] {
  const stream = new ToolCallStream(calling.parallel)
  stream.push(text)
  return stream.calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } }))
}

/** An assistant turn's text as the model sees it: its content, then each call in `<tool_call>` tags. */
export function assistantText(message: Extract<MessageBody, { role: 'assistant' }>): string {
  const content = message.content ?? ''
  const text = typeof content === 'string' ? content : content.map((p) => p.text).join('')
  const calls = (message.tool_calls ?? []).map(
    (c) =>
      `<tool_call>\n${JSON.stringify({ name: c.function.name, arguments: parseArguments(c.function.arguments) })}\n</tool_call>`,
  )
  return [text, ...calls].filter((part) => part !== '').join('\n')
}

/** A tool's result as the user turn the model sees. */
export function toolResultText(message: Extract<MessageBody, { role: 'tool' }>): string {
  const content = typeof message.content === 'string' ? message.content : message.content.map((p) => p.text).join('')
  return `<tool_response>\n${content}\n</tool_response>`
}

/** Arguments as sent back: JSON when they parse (as the model wrote them), else the string itself. */
function parseArguments(text: string): unknown {
  try {
    return JSON.parse(text) as unknown
  } catch {
    return text
  }
}
