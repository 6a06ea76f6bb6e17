/**
 * An EngineObserver for tests that wait on what the engine reports instead of
 * a time: `next('gauges', g => g.running === 0)` resolves with the first such
 * report made after the call (the worker sends one once an abort has freed
 * its sequence, or when it goes idle).
 */
import type { EngineObserver, RequestRecord, StepRecord } from '../../src/batching/client-types.js'

type Gauges = Pick<StepRecord, 'running' | 'waiting' | 'kvUsage'>

interface Reports {
  finished: RequestRecord
  step: StepRecord
  gauges: Gauges
  imageAborted: true
}

type Waiter = { kind: keyof Reports; test: (report: never) => boolean; resolve: (report: never) => void }

export class EngineEvents implements EngineObserver {
  readonly finished: RequestRecord[] = []
  private waiters: Waiter[] = []

  /** The first report of `kind` after this call for which `test` holds. */
  next<K extends keyof Reports>(kind: K, test: (report: Reports[K]) => boolean = () => true): Promise<Reports[K]> {
    return new Promise((resolve) => this.waiters.push({ kind, test, resolve } as Waiter))
  }

  private report<K extends keyof Reports>(kind: K, report: Reports[K]): void {
    const met = this.waiters.filter((w) => w.kind === kind && (w.test as (r: Reports[K]) => boolean)(report))
    this.waiters = this.waiters.filter((w) => !met.includes(w))
    for (const w of met) (w.resolve as (r: Reports[K]) => void)(report)
  }

  requestFinished(record: RequestRecord): void {
    this.finished.push(record)
    this.report('finished', record)
  }

  step(record: StepRecord): void {
    this.report('step', record)
  }

  gauges(state: Gauges): void {
    this.report('gauges', state)
  }

  imageRequestAborted(): void {
    this.report('imageAborted', true)
  }

  requestRejected(): void {}
  imageRequestFinished(): void {}
  image(): void {}
  engineUp(): void {}
  executionProvider(): void {}
}

/** Both observers get every report, `first` first (a test waiting on `second` then finds `first` up to date). */
export function tee(first: EngineObserver, second: EngineObserver): EngineObserver {
  return {
    requestFinished: (record) => (first.requestFinished(record), second.requestFinished(record)),
    requestRejected: (code) => (first.requestRejected(code), second.requestRejected(code)),
    step: (record) => (first.step(record), second.step(record)),
    gauges: (state) => (first.gauges(state), second.gauges(state)),
    imageRequestAborted: () => (first.imageRequestAborted(), second.imageRequestAborted()),
    imageRequestFinished: (record) => (first.imageRequestFinished(record), second.imageRequestFinished(record)),
    image: (record) => (first.image(record), second.image(record)),
    engineUp: (up) => (first.engineUp(up), second.engineUp(up)),
    executionProvider: (provider) => (first.executionProvider(provider), second.executionProvider(provider)),
  }
}
