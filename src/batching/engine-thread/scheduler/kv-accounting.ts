/**
 * KV cache capacity, accounted in pages; no tensors live here. The engine's
 * real cache follows the scheduler's decisions, so the two never disagree
 * about who may grow.
 *
 *   capacity = 10 positions, pageSize = 4  ->  2 pages (the 2 leftover positions are unusable)
 *
 *   seq a: allocate(a, 5) -> pages [####][#...]   usedPositions 5, 2 pages in use
 *   seq b: canAllocate(b, 1) -> false (no free page)
 *   free(a) -> 0 pages in use; free(a) again -> no-op
 */
import { requireInteger } from '../../require-integer.js'
import { KelixError } from '../../../errors/kelix-error.js'

export interface KvAccountingOptions {
  /** Total positions the cache holds; rounded down to whole pages. */
  capacity: number
  /** Positions per page; every sequence holds whole pages. */
  pageSize: number
}

/** The read-only side, for metrics and tests. */
export interface KvView {
  readonly totalPages: number
  readonly freePages: number
  readonly usedPositions: number
  usage(): number
  pagesHeld(id: string): number
  sequencesHolding(): string[]
}

interface Holding {
  pages: number
  positions: number
}

export class KvAccounting implements KvView {
  readonly pageSize: number
  readonly totalPages: number
  private readonly holdings = new Map<string, Holding>()
  private pagesInUse = 0
  private positionsInUse = 0

  constructor(options: KvAccountingOptions) {
    requireInteger('pageSize', options.pageSize, 1)
    requireInteger('capacity', options.capacity, options.pageSize)
    this.pageSize = options.pageSize
    this.totalPages = Math.floor(options.capacity / options.pageSize)
  }

  get freePages(): number {
    return this.totalPages - this.pagesInUse
  }

  /** Positions the sequences asked for (not rounded up to pages). */
  get usedPositions(): number {
    return this.positionsInUse
  }

  /** Pages in use over total pages, 0..1. */
  usage(): number {
    return this.pagesInUse / this.totalPages
  }

  pagesHeld(id: string): number {
    return this.holdings.get(id)?.pages ?? 0
  }

  /** Ids holding at least one position, in the order they first allocated. */
  sequencesHolding(): string[] {
    return [...this.holdings.keys()]
  }

  /** Whether `id` can grow to hold `positions` in all (what it holds counts). */
  canAllocate(id: string, positions: number): boolean {
    return this.extraPages(id, positions) <= this.freePages
  }

  /**
   * Grows `id` to hold `upToPositions` in all; never shrinks it.
   * @throws KelixError KV_OVER_CAPACITY when the free pages do not suffice.
   */
  allocate(id: string, upToPositions: number): void {
    requireInteger('upToPositions', upToPositions, 0)
    const extra = this.extraPages(id, upToPositions)
    if (extra > this.freePages) {
      throw new KelixError('KV_OVER_CAPACITY', `${id} needs ${extra} more pages, ${this.freePages} are free`)
    }
    const held = this.holdings.get(id) ?? { pages: 0, positions: 0 }
    const positions = Math.max(held.positions, upToPositions)
    if (positions === 0) return
    this.pagesInUse += extra
    this.positionsInUse += positions - held.positions
    this.holdings.set(id, { pages: held.pages + extra, positions })
  }

  /** Releases everything `id` holds. Returns false when it held nothing (already freed). */
  free(id: string): boolean {
    const held = this.holdings.get(id)
    if (held === undefined) return false
    this.holdings.delete(id)
    this.pagesInUse -= held.pages
    this.positionsInUse -= held.positions
    return true
  }

  private extraPages(id: string, positions: number): number {
    const needed = Math.ceil(positions / this.pageSize)
    return Math.max(0, needed - this.pagesHeld(id))
  }
}
