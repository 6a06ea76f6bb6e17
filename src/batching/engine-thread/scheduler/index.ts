/** The scheduler's public surface: capacity, time limits, and the step planner (admission runs on the HTTP thread: ../../http-thread/admission.ts). */
export { deadlinePassed, expiredInQueue, queueTimeMs } from './deadlines.js'
export { KvAccounting } from './kv-accounting.js'
export type { KvAccountingOptions, KvView } from './kv-accounting.js'
export { Scheduler } from './scheduler.js'
export type { SchedulerOptions } from './scheduler.js'
export { SEQUENCE_STATUSES, isFinished } from './types.js'
export type {
  FinishReason,
  FinishedStatus,
  ScheduledSequence,
  SchedulerConfig,
  SchedulerOutput,
  SchedulerRequest,
  SequenceStatus,
  SequenceView,
  StepResult,
} from './types.js'
