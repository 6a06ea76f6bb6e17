/**
 * Every error the scheduler raises, by stable code. All of them mean a caller
 * broke a contract (bad option, bad request, a step result that does not match
 * the step): none is a condition to retry.
 */
export const SCHEDULER_ERRORS = {
  INVALID_CONFIG: 'a scheduler or admission option is out of range',
  INVALID_REQUEST: 'a request has lengths the scheduler cannot serve',
  DUPLICATE_ID: 'a sequence with this id is already known',
  KV_OVER_CAPACITY: 'a KV allocation would exceed the capacity',
  STEP_IN_FLIGHT: 'schedule() was called before the previous step was updated',
  UPDATE_MISMATCH: 'the step results do not match the scheduled step',
} as const

export type SchedulerErrorCode = keyof typeof SCHEDULER_ERRORS

export class SchedulerError extends Error {
  override readonly name = 'SchedulerError'

  constructor(
    readonly code: SchedulerErrorCode,
    detail: string,
  ) {
    super(`${SCHEDULER_ERRORS[code]}: ${detail}`)
  }
}

/** Throws INVALID_CONFIG naming `name` unless `value` is an integer >= `min`. */
export function requireInteger(name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new SchedulerError('INVALID_CONFIG', `${name} must be an integer >= ${min}, got ${value}`)
  }
}
