/** The engine's bookkeeping when nothing is left anywhere: every leak check compares against it. */
import type { EngineStats } from '../../src/batching/protocol.js'

export const IDLE_STATS: EngineStats = {
  running: 0,
  waiting: 0,
  kvUsage: 0,
  kvSequences: 0,
  engineSequences: 0,
  denoiseJobs: 0,
}
