/**
 * Which of each request's sequences the engine and the scheduler still hold,
 * kept for chat and image requests alike: choice k of request r is the
 * sequence `r#k`. Ending a request (abort, failure) ends exactly its live
 * sequences, whichever choices already finished.
 */
import type { LoopEngine } from './loop-engine.js'
import type { Scheduler } from './scheduler/index.js'

/** Sequence id of choice `choice` of request `reqId`. */
export const seqId = (reqId: string, choice: number): string => `${reqId}#${choice}`

export function parseSeqId(id: string): { reqId: string; choice: number } {
  const at = id.lastIndexOf('#')
  return { reqId: id.slice(0, at), choice: Number(id.slice(at + 1)) }
}

/** A request's priority and time limit, as the scheduler orders and expires its sequences. */
export interface Scheduling {
  priority?: number
  timeoutMs?: number
}

export class RequestSequences {
  /** Per request, the choices whose sequences are live. */
  private readonly live = new Map<string, Set<number>>()

  constructor(
    private readonly engine: Pick<LoopEngine, 'release' | 'canReusePrompt'>,
    private readonly scheduler: Scheduler,
  ) {}

  /** The sequence whose computed prompt the request's other choices take from the prefix cache, when they can. */
  promptSource(reqId: string, promptLength: number): string | undefined {
    return this.engine.canReusePrompt(promptLength) ? seqId(reqId, 0) : undefined
  }

  /** Queues choice `choice` of `reqId`, already added to the engine, with the scheduler: the request's priority and deadline. */
  queue(
    reqId: string,
    choice: number,
    lengths: { promptLength: number; maxNewTokens: number },
    arrivalTime: number,
    request: Scheduling,
    promptFrom?: string,
  ): void {
    const id = seqId(reqId, choice)
    this.scheduler.add({
      id,
      ...lengths,
      priority: request.priority ?? 0,
      arrivalTime,
      ...(request.timeoutMs === undefined ? {} : { deadline: arrivalTime + request.timeoutMs }),
      ...(promptFrom === undefined ? {} : { promptFrom }),
    })
    const live = this.live.get(reqId) ?? new Set<number>()
    live.add(choice)
    this.live.set(reqId, live)
  }

  has(reqId: string): boolean {
    return this.live.has(reqId)
  }

  /** Every request with a live sequence. */
  requests(): string[] {
    return [...this.live.keys()]
  }

  /** A sequence the scheduler ended: the engine forgets it. Returns whether it was its request's last. */
  release(id: string): boolean {
    this.engine.release(id)
    const { reqId, choice } = parseSeqId(id)
    const live = this.live.get(reqId)
    live?.delete(choice)
    if (live !== undefined && live.size > 0) return false
    this.live.delete(reqId)
    return true
  }

  /** Ends every live sequence of a request now (abort, failure): the scheduler and the engine forget them. Returns their choices. */
  drop(reqId: string): number[] {
    const choices = [...(this.live.get(reqId) ?? [])]
    this.live.delete(reqId)
    for (const choice of choices) {
      this.scheduler.abort(seqId(reqId, choice))
      this.engine.release(seqId(reqId, choice))
    }
    this.scheduler.takeFinished()
    return choices
  }
}
