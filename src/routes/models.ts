/** `GET /v1/models` and `GET /v1/models/:id`, in the OpenAI list and object shapes. */
import type { FastifyInstance } from 'fastify'
import { errorSchema } from './chat/schema.js'
import { KelixError } from '../errors/kelix-error.js'

export interface ServedModel {
  /** The id clients send. */
  id: string
  /** Other ids accepted for it. */
  aliases: readonly string[]
  /** Unix seconds when the server loaded it. */
  created: number
}

const modelObject = (m: ServedModel) => ({ id: m.id, object: 'model', created: m.created, owned_by: 'kelix-serve' })

const modelSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    object: { const: 'model' },
    created: { type: 'integer' },
    owned_by: { type: 'string' },
  },
  required: ['id', 'object', 'created', 'owned_by'],
} as const

export async function modelRoutes(app: FastifyInstance, opts: { model: ServedModel }): Promise<void> {
  const listSchema = {
    type: 'object',
    properties: { object: { const: 'list' }, data: { type: 'array', items: modelSchema } },
    required: ['object', 'data'],
  }
  app.get(
    '/v1/models',
    {
      schema: { summary: 'List the served model', tags: ['models'], response: { 200: listSchema, '4XX': errorSchema } },
    },
    async () => ({
      object: 'list',
      data: [modelObject(opts.model)],
    }),
  )
  app.get<{ Params: { id: string } }>(
    '/v1/models/:id',
    {
      schema: {
        summary: 'The served model, by its id or an alias',
        tags: ['models'],
        params: { type: 'object', properties: { id: { type: 'string' } } },
        response: { 200: modelSchema, '4XX': errorSchema },
      },
    },
    async (request) => {
      const { id } = request.params
      if (id !== opts.model.id && !opts.model.aliases.includes(id)) {
        throw new KelixError(
          'model_not_found',
          `The model '${id}' does not exist. This server serves '${opts.model.id}'.`,
          { param: 'model' },
        )
      }
      return modelObject(opts.model)
    },
  )
}
