/**
 * The worker has no logger: its lines (a failed step, a sequence ended in
 * error) come as 'log' messages, which the engine client writes to the host's
 * logger (the server's pino), fields first as pino takes them.
 */
import { Writable } from 'node:stream'
import { pino } from 'pino'
import t from 'tap'
import { logWorkerLine, type EngineLogger } from '../../src/batching/http-thread/engine-client.js'

t.test("a worker's log line reaches the host's logger at its level, with its fields", async (t) => {
  const lines: string[] = []
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString())
      done()
    },
  })
  const logger: EngineLogger = pino({ level: 'info', base: null, timestamp: false }, sink)
  logWorkerLine(logger, {
    type: 'log',
    level: 'error',
    message: 'engine step failed: out of memory',
    fields: { error: 'out of memory', stack: 'Error: out of memory' },
  })
  logWorkerLine(logger, { type: 'log', level: 'warn', message: 'sequence r#0 failed', fields: { sequence: 'r#0' } })
  t.same(
    lines.map((l) => JSON.parse(l)),
    [
      {
        level: 50,
        engine: 'worker',
        error: 'out of memory',
        stack: 'Error: out of memory',
        msg: 'engine step failed: out of memory',
      },
      { level: 40, engine: 'worker', sequence: 'r#0', msg: 'sequence r#0 failed' },
    ],
  )
})
