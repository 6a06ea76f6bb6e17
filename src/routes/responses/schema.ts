/**
 * The Responses API contract, `POST /v1/responses`, for what this server does
 * with it: text and image input (`input_text`, `input_image`), instructions,
 * `text.format` (plain, JSON object, JSON schema), streaming. Nothing is
 * stored: `store` may only be false, and `previous_response_id` is refused.
 */
import { content } from '../chat/schema.js'

const number = (minimum: number, maximum: number) => ({ type: 'number', minimum, maximum })

const inputText = {
  type: 'object',
  properties: { type: { const: 'input_text' }, text: { type: 'string' } },
  required: ['type', 'text'],
  additionalProperties: false,
} as const
const inputImage = {
  type: 'object',
  properties: {
    type: { const: 'input_image' },
    image_url: { type: 'string', minLength: 1, description: 'a data: URL (base64) or an allowed https URL' },
    detail: { enum: ['auto', 'low', 'high'] },
  },
  required: ['type', 'image_url'],
  additionalProperties: false,
} as const
const outputText = {
  type: 'object',
  properties: { type: { const: 'output_text' }, text: { type: 'string' }, annotations: { type: 'array' } },
  required: ['type', 'text'],
  additionalProperties: false,
} as const

const inputMessage = {
  type: 'object',
  properties: {
    type: { const: 'message' },
    role: { enum: ['user', 'system', 'developer', 'assistant'] },
    content: content([inputText, inputImage, outputText]),
    id: { type: 'string' },
    status: { type: 'string' },
  },
  required: ['role', 'content'],
  additionalProperties: false,
} as const

const textFormat = {
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
        name: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' },
        description: { type: 'string' },
        schema: { type: 'object' },
        strict: { type: ['boolean', 'null'] },
      },
      required: ['type', 'name', 'schema'],
      additionalProperties: false,
    },
  ],
} as const

export const responseRequestSchema = {
  type: 'object',
  properties: {
    model: { type: 'string' },
    input: { anyOf: [{ type: 'string' }, { type: 'array', minItems: 1, items: inputMessage }] },
    instructions: { type: ['string', 'null'] },
    max_output_tokens: { type: ['integer', 'null'], minimum: 1 },
    temperature: number(0, 2),
    top_p: number(0, 1),
    stream: { type: 'boolean' },
    store: { type: 'boolean' },
    previous_response_id: { type: ['string', 'null'] },
    text: { type: 'object', properties: { format: textFormat }, additionalProperties: false },
    metadata: { type: 'object', additionalProperties: { type: 'string' } },
    user: { type: 'string' },
    tools: { type: 'array', maxItems: 0, description: 'tools are served by /v1/chat/completions' },
    tool_choice: { enum: ['none', 'auto'] },
    parallel_tool_calls: { type: 'boolean' },
    truncation: { enum: ['disabled', 'auto'] },
    include: { type: 'array', maxItems: 0 },
  },
  required: ['model', 'input'],
  additionalProperties: false,
} as const

type InputContent =
  | string
  | Array<
      | { type: 'input_text'; text: string }
      | { type: 'input_image'; image_url: string; detail?: 'auto' | 'low' | 'high' }
      | { type: 'output_text'; text: string }
    >
export type TextFormatBody =
  | { type: 'text' }
  | { type: 'json_object' }
  | {
      type: 'json_schema'
      name: string
      description?: string
      schema: Record<string, unknown>
      strict?: boolean | null
    }

/** A request body that passed `responseRequestSchema`. */
export interface ResponseRequestBody {
  model: string
  input:
    string | Array<{ type?: 'message'; role: 'user' | 'system' | 'developer' | 'assistant'; content: InputContent }>
  instructions?: string | null
  max_output_tokens?: number | null
  temperature?: number
  top_p?: number
  stream?: boolean
  store?: boolean
  previous_response_id?: string | null
  text?: { format?: TextFormatBody }
  metadata?: Record<string, string>
  user?: string
  tools?: never[]
  tool_choice?: 'none' | 'auto'
  parallel_tool_calls?: boolean
  truncation?: 'disabled' | 'auto'
  include?: never[]
}

const outputMessage = {
  type: 'object',
  properties: {
    type: { const: 'message' },
    id: { type: 'string' },
    status: { type: 'string' },
    role: { const: 'assistant' },
    content: {
      type: 'array',
      items: {
        type: 'object',
        properties: { type: { const: 'output_text' }, text: { type: 'string' }, annotations: { type: 'array' } },
      },
    },
  },
} as const

export const responseObjectSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    object: { const: 'response' },
    created_at: { type: 'integer' },
    status: { enum: ['completed', 'incomplete', 'in_progress', 'failed'] },
    model: { type: 'string' },
    output: { type: 'array', items: outputMessage },
    incomplete_details: { anyOf: [{ type: 'object', properties: { reason: { type: 'string' } } }, { type: 'null' }] },
    error: { type: 'null' },
    instructions: { type: ['string', 'null'] },
    max_output_tokens: { type: ['integer', 'null'] },
    temperature: { type: 'number' },
    top_p: { type: 'number' },
    parallel_tool_calls: { type: 'boolean' },
    tool_choice: { type: 'string' },
    tools: { type: 'array' },
    text: { type: 'object', additionalProperties: true },
    truncation: { type: 'string' },
    store: { type: 'boolean' },
    previous_response_id: { type: 'null' },
    metadata: { type: 'object', additionalProperties: { type: 'string' } },
    user: { type: ['string', 'null'] },
    usage: {
      anyOf: [
        {
          type: 'object',
          properties: {
            input_tokens: { type: 'integer' },
            input_tokens_details: { type: 'object', properties: { cached_tokens: { type: 'integer' } } },
            output_tokens: { type: 'integer' },
            output_tokens_details: { type: 'object', properties: { reasoning_tokens: { type: 'integer' } } },
            total_tokens: { type: 'integer' },
          },
        },
        { type: 'null' },
      ],
    },
  },
  required: ['id', 'object', 'created_at', 'status', 'model', 'output'],
} as const
