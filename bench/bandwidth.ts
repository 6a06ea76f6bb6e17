/**
 * Memory bandwidth of this machine, measured in this process: worker threads
 * each copy their share of a 1 GiB buffer into another with `TypedArray.set`
 * (a memcpy), or scan it with `Buffer.indexOf` for a byte it does not hold (a
 * memchr: reads only). Rates are bytes *read* per second, the quantity a
 * decode step's weights cost; a copy also writes as many bytes, so its read
 * rate is below what a read-only kernel (a GEMV) can reach.
 *
 * GB are 10^9 bytes.
 */
import { Worker } from 'node:worker_threads'

export interface Bandwidth {
  threads: number
  /** Bytes read per second by the copy loop, GB/s (best of the trials). */
  copyReadGBps: number
  /** Bytes read per second by the read-only scan, GB/s (best of the trials). */
  scanReadGBps: number
}

const GIB = 1024 ** 3

/** Plain JavaScript, run with `eval`: no loader needed in the worker. */
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads')
const { src, dst, start, length } = workerData
const from = new Uint8Array(src, start, length)
const to = new Uint8Array(dst, start, length)
const scan = Buffer.from(src, start, length)
parentPort.on('message', ({ kind, rounds }) => {
  const t0 = performance.now()
  for (let i = 0; i < rounds; i++) {
    if (kind === 'copy') to.set(from)
    else if (scan.indexOf(0xff) !== -1) throw new Error('the scanned buffer must not hold 0xff')
  }
  parentPort.postMessage(performance.now() - t0)
})
`

/**
 * Holds two 1 GiB buffers (allocated and touched once: a first touch costs
 * page faults, not bandwidth) and measures copy and scan rates with any number
 * of workers, each on its own contiguous share, timed from the start message
 * to the last reply, best of `trials`.
 */
export class BandwidthMeter {
  private readonly src: SharedArrayBuffer
  private readonly dst: SharedArrayBuffer

  constructor(private readonly bytes = GIB) {
    this.src = new SharedArrayBuffer(bytes)
    this.dst = new SharedArrayBuffer(bytes)
    // Zeros in the source: the scan never finds 0xff and reads it all.
    new Uint8Array(this.src).fill(1).fill(0)
    new Uint8Array(this.dst).fill(1)
  }

  async measure(threads: number, opts: { rounds?: number; trials?: number } = {}): Promise<Bandwidth> {
    const { bytes, src, dst } = this
    const rounds = opts.rounds ?? 8
    const trials = opts.trials ?? 3
    const share = Math.ceil(bytes / threads / 4096) * 4096
    const workers = Array.from({ length: threads }, (_, i) => {
      const start = Math.min(bytes, i * share)
      return new Worker(WORKER, { eval: true, workerData: { src, dst, start, length: Math.min(share, bytes - start) } })
    })
    const run = async (kind: 'copy' | 'scan', n: number) => {
      const t0 = performance.now()
      await Promise.all(
        workers.map(
          (w) =>
            new Promise(
              (resolve, reject) => (
                w.once('message', resolve).once('error', reject),
                w.postMessage({ kind, rounds: n })
              ),
            ),
        ),
      )
      return (bytes * n) / ((performance.now() - t0) / 1000) / 1e9
    }
    const best = async (kind: 'copy' | 'scan') => {
      await run(kind, 1) // warm-up
      let rate = 0
      for (let t = 0; t < trials; t++) rate = Math.max(rate, await run(kind, rounds))
      return rate
    }
    try {
      return { threads, copyReadGBps: await best('copy'), scanReadGBps: await best('scan') }
    } finally {
      await Promise.all(workers.map((w) => w.terminate()))
    }
  }
}
