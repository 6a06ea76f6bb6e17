/**
 * Conversion progress: on a terminal one line rewritten in place (tensors and
 * bytes done, rate); otherwise one line per stage, so logs stay readable.
 */
export interface Progress {
  /** A stage begins: writing `file` with `tensors` weights of `bytes` float32 bytes. */
  stage(file: string, tensors: number, bytes: number): void
  /** One weight of the current stage is written. */
  weight(bytes: number): void
  /** The current stage is done. */
  done(): void
}

export const SILENT: Progress = { stage() {}, weight() {}, done() {} }

/** Redraws at most this often on a terminal. */
const REDRAW_MS = 200

export function consoleProgress(stream: NodeJS.WriteStream = process.stderr): Progress {
  let file = ''
  let tensors = 0
  let bytes = 0
  let doneTensors = 0
  let doneBytes = 0
  let started = 0
  let drawn = 0
  const line = () => {
    const seconds = (performance.now() - started) / 1000
    const rate = seconds > 0 ? doneBytes / seconds : 0
    return `${file}: ${doneTensors}/${tensors} tensors, ${gb(doneBytes)}/${gb(bytes)} GB, ${(rate / 1e6).toFixed(0)} MB/s, ${seconds.toFixed(1)} s`
  }
  return {
    stage(name, count, total) {
      ;[file, tensors, bytes, doneTensors, doneBytes, started] = [name, count, total, 0, 0, performance.now()]
      if (!stream.isTTY) stream.write(`writing ${name}: ${count} tensors, ${gb(total)} GB\n`)
    },
    weight(size) {
      doneTensors++
      doneBytes += size
      const now = performance.now()
      if (stream.isTTY && now - drawn > REDRAW_MS) {
        drawn = now
        stream.write(`\r\x1b[2K${line()}`)
      }
    },
    done() {
      stream.write(stream.isTTY ? `\r\x1b[2K${line()}\n` : `${line()}\n`)
    },
  }
}

function gb(bytes: number): string {
  return (bytes / 1e9).toFixed(bytes < 1e8 ? 3 : 2)
}
