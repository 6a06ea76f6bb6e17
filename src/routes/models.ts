/** `GET /v1/models` and `GET /v1/models/:id`, in the OpenAI list and object shapes. */
import type { FastifyInstance } from 'fastify'
import { ApiError } from '../server/api-errors.js'

export interface ServedModel {
  /** The id clients send. */
  id: string
  /** Unix seconds when the server loaded it. */
  created: number
}

const modelObject = (m: ServedModel) => ({ id: m.id, object: 'model', created: m.created, owned_by: 'kelix-serve' })

export async function modelRoutes(app: FastifyInstance, opts: { model: ServedModel }): Promise<void> {
  app.get('/v1/models', async () => ({ object: 'list', data: [modelObject(opts.model)] }))
  app.get<{ Params: { id: string } }>('/v1/models/:id', async (request) => {
    if (request.params.id !== opts.model.id) {
      throw new ApiError('model_not_found', `The model '${request.params.id}' does not exist. This server serves '${opts.model.id}'.`, 'model')
    }
    return modelObject(opts.model)
  })
}
