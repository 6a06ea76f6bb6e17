/**
 * Time limits as pure functions: the caller passes `now`, so they are tested
 * without timers. All times are in the same clock, in milliseconds. A limit
 * is reached at the boundary itself (`>=`), so a zero timeout expires at once.
 */

/** A request waited `queueTimeoutMs` or longer since `arrivalTime`; undefined: no limit. */
export function expiredInQueue(now: number, arrivalTime: number, queueTimeoutMs: number | undefined): boolean {
  return queueTimeoutMs !== undefined && now - arrivalTime >= queueTimeoutMs
}

/** The absolute `deadline` is reached; undefined: no deadline. */
export function deadlinePassed(now: number, deadline: number | undefined): boolean {
  return deadline !== undefined && now >= deadline
}

/** How long a request has waited, never negative (clocks handed in out of order). */
export function queueTimeMs(now: number, arrivalTime: number): number {
  return Math.max(0, now - arrivalTime)
}
