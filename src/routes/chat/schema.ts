/**
 * The chat completions contract as JSON Schema: the request (validated by the
 * strict Ajv in src/http/validation.ts) and the responses (serialised by
 * fastify, so undeclared fields never leak), plus the TypeScript shape of a
 * request that passed validation. Ranges agree with the engine's own checks
 * (src/engine/sampling/validate.ts) so a bad value is named here, with its param.
 */

const number = (minimum: number, maximum: number) => ({ type: 'number', minimum, maximum })
const FUNCTION_NAME = {
  type: 'string',
  pattern: '^[A-Za-z0-9_-]{1,64}$',
  description: 'letters, digits, _ and -, at most 64',
} as const
const textPart = {
  type: 'object',
  properties: { type: { const: 'text' }, text: { type: 'string' } },
  required: ['type', 'text'],
  additionalProperties: false,
} as const
const imagePart = {
  type: 'object',
  properties: {
    type: { const: 'image_url' },
    image_url: {
      type: 'object',
      properties: {
        url: {
          type: 'string',
          minLength: 1,
          description: 'a data: URL (base64), attachment://<multipart field>, or an allowed https URL',
        },
        detail: { enum: ['auto', 'low', 'high'] },
      },
      required: ['url'],
      additionalProperties: false,
    },
  },
  required: ['type', 'image_url'],
  additionalProperties: false,
} as const

/** Content: a string, or parts told apart by `type`. */
export const content = (parts: object[]) => ({
  anyOf: [
    { type: 'string' },
    {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        properties: { type: { type: 'string' } },
        discriminator: { propertyName: 'type' },
        required: ['type'],
        oneOf: parts,
      },
    },
  ],
})
/** `response_format`: plain text, any JSON object, or JSON that follows a schema (enforced by constrained decoding). */
const responseFormat = {
  type: 'object',
  properties: { type: { type: 'string' } },
  discriminator: { propertyName: 'type' },
  required: ['type'],
  oneOf: [
    { type: 'object', properties: { type: { const: 'text' } }, required: ['type'], additionalProperties: false },
    { type: 'object', properties: { type: { const: 'json_object' } }, required: ['type'], additionalProperties: false },
    {
      type: 'object',
      properties: {
        type: { const: 'json_schema' },
        json_schema: {
          type: 'object',
          properties: {
            name: FUNCTION_NAME,
            description: { type: 'string' },
            schema: { type: 'object' },
            strict: { type: ['boolean', 'null'] },
          },
          required: ['name'],
          additionalProperties: false,
        },
      },
      required: ['type', 'json_schema'],
      additionalProperties: false,
    },
  ],
} as const
const textContent = content([textPart])
const userContent = content([textPart, imagePart])
const message = (roles: string[], content: object) => ({
  type: 'object',
  properties: { role: roles.length === 1 ? { const: roles[0] } : { enum: roles }, content, name: { type: 'string' } },
  required: ['role', 'content'],
  additionalProperties: false,
})
/** A call the assistant made, as a client sends it back in the history. */
const toolCall = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    type: { const: 'function' },
    function: {
      type: 'object',
      properties: { name: { type: 'string' }, arguments: { type: 'string' } },
      required: ['name', 'arguments'],
      additionalProperties: false,
    },
  },
  required: ['id', 'type', 'function'],
  additionalProperties: false,
} as const
/** An assistant turn: text, tool calls, or both (request.ts checks that one is there). */
const assistantMessage = {
  type: 'object',
  properties: {
    role: { const: 'assistant' },
    content: { anyOf: [...textContent.anyOf, { type: 'null' }] },
    name: { type: 'string' },
    refusal: { type: ['string', 'null'] },
    tool_calls: { type: 'array', minItems: 1, items: toolCall },
  },
  required: ['role'],
  additionalProperties: false,
} as const
/** A tool's result, answering one of the assistant's calls. */
const toolMessage = {
  type: 'object',
  properties: { role: { const: 'tool' }, content: textContent, tool_call_id: { type: 'string', minLength: 1 } },
  required: ['role', 'content', 'tool_call_id'],
  additionalProperties: false,
} as const
const functionTool = {
  type: 'object',
  properties: {
    type: { const: 'function' },
    function: {
      type: 'object',
      properties: {
        name: FUNCTION_NAME,
        description: { type: 'string' },
        parameters: { type: 'object' },
        strict: { type: ['boolean', 'null'] },
      },
      required: ['name'],
      additionalProperties: false,
    },
  },
  required: ['type', 'function'],
  additionalProperties: false,
} as const
const toolChoice = {
  anyOf: [
    { enum: ['none', 'auto', 'required'] },
    {
      type: 'object',
      properties: {
        type: { const: 'function' },
        function: {
          type: 'object',
          properties: { name: { type: 'string' } },
          required: ['name'],
          additionalProperties: false,
        },
      },
      required: ['type', 'function'],
      additionalProperties: false,
    },
  ],
} as const

/** The sampling fields chat completions and completions share (src/engine/sampling/validate.ts has the same ranges). */
export const samplingProperties = {
  stop: {
    anyOf: [
      { type: 'string', minLength: 1 },
      { type: 'array', maxItems: 4, items: { type: 'string', minLength: 1 } },
      { type: 'null' },
    ],
  },
  seed: { type: 'integer', minimum: Number.MIN_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER },
  presence_penalty: number(-2, 2),
  frequency_penalty: number(-2, 2),
  logit_bias: {
    type: 'object',
    description: 'keys are token ids (non-negative integers), values are in [-100, 100]',
    propertyNames: { pattern: '^(0|[1-9][0-9]{0,9})$', description: 'keys are token ids (non-negative integers)' },
    additionalProperties: number(-100, 100),
  },
  top_k: { type: 'integer', minimum: -1 },
  min_p: number(0, 1),
  repetition_penalty: { type: 'number', exclusiveMinimum: 0, maximum: 2 },
} as const

export const chatRequestSchema = {
  type: 'object',
  properties: {
    model: { type: 'string' },
    messages: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        properties: { role: { type: 'string' } },
        discriminator: { propertyName: 'role' },
        required: ['role'],
        oneOf: [
          message(['system', 'developer'], textContent),
          message(['user'], userContent),
          assistantMessage,
          toolMessage,
        ],
      },
    },
    max_tokens: { type: 'integer', minimum: 1 },
    max_completion_tokens: { type: 'integer', minimum: 1 },
    temperature: number(0, 2),
    top_p: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
    n: { type: 'integer', minimum: 1, maximum: 128 },
    ...samplingProperties,
    logprobs: { type: 'boolean' },
    top_logprobs: { type: 'integer', minimum: 0, maximum: 20 },
    user: { type: 'string' },
    stream: { type: 'boolean' },
    stream_options: {
      type: 'object',
      properties: { include_usage: { type: 'boolean' } },
      additionalProperties: false,
    },
    response_format: responseFormat,
    tools: { type: 'array', minItems: 1, maxItems: 128, items: functionTool },
    tool_choice: toolChoice,
    parallel_tool_calls: { type: 'boolean' },
    store: { type: 'boolean' },
    metadata: { type: 'object', additionalProperties: { type: 'string' } },
    service_tier: { type: 'string' },
  },
  required: ['model', 'messages'],
  additionalProperties: false,
} as const

export type ResponseFormatBody =
  | { type: 'text' }
  | { type: 'json_object' }
  | {
      type: 'json_schema'
      json_schema: { name: string; description?: string; schema?: Record<string, unknown>; strict?: boolean | null }
    }
export type ImageDetailValue = 'auto' | 'low' | 'high'
export type TextPartBody = { type: 'text'; text: string }
export type ImagePartBody = { type: 'image_url'; image_url: { url: string; detail?: ImageDetailValue } }
export type ToolCallBody = { id: string; type: 'function'; function: { name: string; arguments: string } }
export type MessageBody =
  | { role: 'system' | 'developer'; content: string | TextPartBody[]; name?: string }
  | { role: 'user'; content: string | Array<TextPartBody | ImagePartBody>; name?: string }
  | {
      role: 'assistant'
      content?: string | TextPartBody[] | null
      name?: string
      refusal?: string | null
      tool_calls?: ToolCallBody[]
    }
  | { role: 'tool'; content: string | TextPartBody[]; tool_call_id: string }
export type FunctionToolBody = {
  type: 'function'
  function: { name: string; description?: string; parameters?: Record<string, unknown>; strict?: boolean | null }
}
export type ToolChoiceBody = 'none' | 'auto' | 'required' | { type: 'function'; function: { name: string } }

/** A request body that passed `chatRequestSchema`. */
export interface ChatRequestBody {
  model: string
  messages: MessageBody[]
  max_tokens?: number
  max_completion_tokens?: number
  temperature?: number
  top_p?: number
  n?: number
  stop?: string | string[] | null
  seed?: number
  presence_penalty?: number
  frequency_penalty?: number
  logit_bias?: Record<string, number>
  logprobs?: boolean
  top_logprobs?: number
  user?: string
  stream?: boolean
  stream_options?: { include_usage?: boolean }
  response_format?: ResponseFormatBody
  tools?: FunctionToolBody[]
  tool_choice?: ToolChoiceBody
  parallel_tool_calls?: boolean
  store?: boolean
  metadata?: Record<string, string>
  service_tier?: string
  top_k?: number
  min_p?: number
  repetition_penalty?: number
}

const nullable = (schema: object) => ({ anyOf: [schema, { type: 'null' }] })

const topLogprob = {
  type: 'object',
  properties: {
    token: { type: 'string' },
    logprob: { type: 'number' },
    bytes: { type: 'array', items: { type: 'integer' } },
  },
  required: ['token', 'logprob', 'bytes'],
}
const tokenLogprob = {
  type: 'object',
  properties: { ...topLogprob.properties, top_logprobs: { type: 'array', items: topLogprob } },
  required: ['token', 'logprob', 'bytes', 'top_logprobs'],
}
const choiceLogprobs = nullable({
  type: 'object',
  properties: {
    content: { type: 'array', items: tokenLogprob },
    refusal: nullable({ type: 'array', items: tokenLogprob }),
  },
  required: ['content'],
})

export const usageSchema = {
  type: 'object',
  properties: {
    prompt_tokens: { type: 'integer' },
    completion_tokens: { type: 'integer' },
    total_tokens: { type: 'integer' },
    prompt_tokens_details: {
      type: 'object',
      properties: { cached_tokens: { type: 'integer' } },
      required: ['cached_tokens'],
    },
  },
  required: ['prompt_tokens', 'completion_tokens', 'total_tokens', 'prompt_tokens_details'],
} as const

/** The fields a completion and a chunk share; `choice` describes one entry of `choices`. */
function completionEnvelope<O extends string, C extends object, U extends object>(object: O, choice: C, usage: U) {
  return {
    type: 'object',
    properties: {
      id: { type: 'string' },
      object: { const: object },
      created: { type: 'integer' },
      model: { type: 'string' },
      system_fingerprint: { type: 'string' },
      choices: { type: 'array', items: choice },
      usage,
    },
  } as const
}

const completionBase = completionEnvelope(
  'chat.completion',
  {
    type: 'object',
    properties: {
      index: { type: 'integer' },
      message: {
        type: 'object',
        properties: {
          role: { const: 'assistant' },
          content: { type: ['string', 'null'] },
          refusal: { type: 'null' },
          tool_calls: { type: 'array', items: toolCall },
        },
        required: ['role', 'content', 'refusal'],
      },
      logprobs: choiceLogprobs,
      finish_reason: { enum: ['stop', 'length', 'tool_calls'] },
    },
    required: ['index', 'message', 'logprobs', 'finish_reason'],
  },
  usageSchema,
)

export const chatCompletionSchema = {
  ...completionBase,
  required: ['id', 'object', 'created', 'model', 'system_fingerprint', 'choices', 'usage'],
} as const

const chunkBase = completionEnvelope(
  'chat.completion.chunk',
  {
    type: 'object',
    properties: {
      index: { type: 'integer' },
      delta: {
        type: 'object',
        properties: {
          role: { const: 'assistant' },
          content: { type: 'string' },
          tool_calls: {
            type: 'array',
            items: {
              type: 'object',
              properties: {
                index: { type: 'integer' },
                id: { type: 'string' },
                type: { const: 'function' },
                function: { type: 'object', properties: { name: { type: 'string' }, arguments: { type: 'string' } } },
              },
              required: ['index'],
            },
          },
        },
      },
      logprobs: choiceLogprobs,
      finish_reason: nullable({ enum: ['stop', 'length', 'tool_calls'] }),
    },
    required: ['index', 'delta', 'logprobs', 'finish_reason'],
  },
  nullable(usageSchema),
)

/** One `data:` event of a stream; documented, not used to serialise (the SSE writer writes JSON itself). */
export const chatCompletionChunkSchema = {
  ...chunkBase,
  required: ['id', 'object', 'created', 'model', 'system_fingerprint', 'choices'],
} as const

export const errorSchema = {
  type: 'object',
  properties: {
    error: {
      type: 'object',
      properties: {
        message: { type: 'string' },
        type: { type: 'string' },
        param: { type: ['string', 'null'] },
        code: { type: 'string' },
      },
      required: ['message', 'type', 'param', 'code'],
    },
  },
  required: ['error'],
} as const
