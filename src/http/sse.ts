/**
 * Server-sent events on a raw response: `data: <json>\n\n` events, `: keep-alive`
 * comments after a quiet spell (proxies and clients drop silent streams),
 * write backpressure (a write that fills the socket buffer waits for 'drain'),
 * and one `closed` signal when the client goes away.
 */
import type { ServerResponse } from 'node:http'

export interface SseOptions {
  /** A comment goes out after this long without a write, ms. */
  heartbeatMs: number
}

export class SseWriter {
  private lastWrite = Date.now()
  private readonly timer: NodeJS.Timeout
  private readonly controller = new AbortController()
  private ended = false

  /** Sends the 200 headers now; `headers` adds to the SSE ones (e.g. x-request-id). */
  constructor(
    private readonly res: ServerResponse,
    headers: Record<string, string | number | string[]>,
    options: SseOptions,
  ) {
    res.writeHead(200, {
      ...headers,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    })
    res.flushHeaders()
    const onClose = () => {
      clearInterval(this.timer)
      if (!res.writableFinished) this.controller.abort()
    }
    res.once('close', onClose)
    const tick = Math.max(5, Math.floor(options.heartbeatMs / 4))
    this.timer = setInterval(() => {
      if (Date.now() - this.lastWrite >= options.heartbeatMs && !res.writableNeedDrain)
        void this.write(': keep-alive\n\n')
    }, tick)
    this.timer.unref()
  }

  /** Aborts when the client disconnects before `end()`. */
  get signal(): AbortSignal {
    return this.controller.signal
  }

  get closed(): boolean {
    return this.controller.signal.aborted || this.ended
  }

  /** One `data:` event: an object as JSON, or a string as is (`[DONE]`). */
  async send(data: object | string): Promise<void> {
    await this.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`)
  }

  /** One named event (`event: <name>` then its data as JSON), as the Responses API streams them. */
  async sendEvent(name: string, data: object): Promise<void> {
    await this.write(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`)
  }

  /** Resolves once the socket can take more; right away when the client has gone. */
  private async write(text: string): Promise<void> {
    if (this.closed) return
    this.lastWrite = Date.now()
    if (this.res.write(text)) return
    await new Promise<void>((resolve) => {
      const done = () => {
        this.res.off('drain', done)
        this.signal.removeEventListener('abort', done)
        resolve()
      }
      this.res.on('drain', done)
      this.signal.addEventListener('abort', done)
    })
  }

  /** Ends the response; idempotent. */
  end(): void {
    clearInterval(this.timer)
    if (this.ended) return
    this.ended = true
    if (!this.res.writableEnded) this.res.end()
  }
}
