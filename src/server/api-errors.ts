/**
 * Every error the HTTP API returns, by stable code, in the OpenAI shape
 * `{"error": {"message", "type", "param", "code"}}`. Routes throw `apiError(code, …)`;
 * the error handler serialises it. Codes double as metric labels.
 */
export const API_ERRORS = {
  invalid_request_error: { status: 400, type: 'invalid_request_error' },
  invalid_api_key: { status: 401, type: 'invalid_request_error' },
  model_not_found: { status: 404, type: 'invalid_request_error' },
  not_found: { status: 404, type: 'invalid_request_error' },
  server_error: { status: 500, type: 'server_error' },
  engine_unavailable: { status: 503, type: 'server_error' },
} as const

export type ApiErrorCode = keyof typeof API_ERRORS

export class ApiError extends Error {
  override readonly name = 'ApiError'
  readonly status: number
  readonly type: string

  constructor(
    readonly code: ApiErrorCode,
    message: string,
    readonly param: string | null = null,
  ) {
    super(message)
    this.status = API_ERRORS[code].status
    this.type = API_ERRORS[code].type
  }

  toBody() {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } }
  }
}
