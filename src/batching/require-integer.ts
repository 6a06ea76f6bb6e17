/** The option check the scheduler and admission share (both threads): a caller's contract, not a client's mistake. */
import { KelixError } from '../errors/kelix-error.js'

/** Throws SCHEDULER_CONFIG_INVALID naming `name` unless `value` is an integer >= `min`. */
export function requireInteger(name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new KelixError('SCHEDULER_CONFIG_INVALID', `${name} must be an integer >= ${min}, got ${value}`)
  }
}
