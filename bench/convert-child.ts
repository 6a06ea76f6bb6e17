/**
 * The converter alone in its own process, so that its peak resident memory is
 * its own: `node --import tsx bench/convert-child.ts FROM OUT RESULT_JSON`,
 * then `go` on stdin. Run by convert-bench.ts, which samples this process's
 * memory from outside.
 *
 * Started before the checkpoint is written and told to begin on stdin: on Linux
 * `ru_maxrss` (resourceUsage().maxRSS) survives exec and so counts the forking
 * parent's resident memory at spawn time; spawned early, that is the parent's
 * small start-up footprint, not the writer's buffers. VmHWM from
 * /proc/self/status starts afresh at exec: the converter's own peak.
 *
 * Writes the conversion summary, each graph's write interval (wall-clock ms,
 * comparable with the parent's samples), maxRSS and VmHWM.
 */
import { readFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { convertCheckpoint } from '../src/convert/convert.js'
import { consoleProgress, type Progress } from '../src/convert/progress.js'

export interface ChildStage {
  file: string
  tensors: number
  bytes: number
  startMs: number
  endMs: number
}

export interface ChildResult {
  /** Wall-clock ms (Date.now()) when the child started converting and when it finished. */
  startMs: number
  endMs: number
  /** From the start to the first graph write: open, read configs, build the graphs, write config and tokenizer files. */
  prepareSeconds: number
  stages: ChildStage[]
  graphs: Array<{ file: string; graphBytes: number; dataBytes: number; parameters: number }>
  unused: unknown
  partlyUsed: unknown
  /** process.resourceUsage().maxRSS, in kilobytes (Linux): includes the parent's resident memory when it forked this process. */
  maxRssKb: number
  /** VmHWM of /proc/self/status, in kilobytes: this process's own peak resident memory since exec. */
  vmHwmKb: number
}

const [from, out, resultPath] = process.argv.slice(2)
if (from === undefined || out === undefined || resultPath === undefined)
  throw new Error('usage: convert-child.ts FROM OUT RESULT_JSON')

// Wait for the parent's go: the checkpoint is written meanwhile.
const go = await new Promise<string>((done) => {
  let text = ''
  process.stdin
    .setEncoding('utf8')
    .on('data', (chunk: string) => (text += chunk))
    .once('end', () => done(text))
})
if (go.trim() !== 'go') process.exit(3)

const shown = consoleProgress()
const stages: ChildStage[] = []
const progress: Progress = {
  stage(file, tensors, bytes) {
    stages.push({ file, tensors, bytes, startMs: Date.now(), endMs: 0 })
    shown.stage(file, tensors, bytes)
  },
  weight(bytes) {
    shown.weight(bytes)
  },
  done() {
    const stage = stages.at(-1)
    if (stage !== undefined) stage.endMs = Date.now()
    shown.done()
  },
}

const startMs = Date.now()
const summary = await convertCheckpoint({ from, out, progress })
const endMs = Date.now()
const result: ChildResult = {
  startMs,
  endMs,
  prepareSeconds: ((stages[0]?.startMs ?? endMs) - startMs) / 1000,
  stages,
  graphs: summary.graphs,
  unused: summary.unused,
  partlyUsed: summary.partlyUsed,
  maxRssKb: process.resourceUsage().maxRSS,
  vmHwmKb: Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? Number.NaN),
}
await writeFile(resultPath, `${JSON.stringify(result, null, 2)}\n`)
