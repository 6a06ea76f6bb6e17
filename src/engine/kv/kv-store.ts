/**
 * Where the decoder's keys and values live between steps.
 *
 * The engine talks to this interface only: HostKvStore keeps the cache in
 * host memory, DeviceKvStore keeps it on a GPU (WebGPU buffers fed back with
 * `preferredOutputLocation: 'gpu-buffer'`). Gathering and appending are
 * asynchronous because a device store runs graphs to do them.
 */
import type ort from 'onnxruntime-node'

/** One row of a decoder call: which sequence, and how many new slots it fills this call. */
export interface BatchRow {
  seqId: string
  newSlots: number
}

/** The past-side inputs of one decoder call. */
export interface PastFeeds {
  /** The call's rows in the order of the tensors' batch axis (a store may reorder them). */
  rows: readonly BatchRow[]
  /** `past_key_values.{i}.key/value`, each [rows, kv_heads, pastLength, head_dim]. */
  tensors: Record<string, ort.Tensor>
  /** Cache slots per row in the tensors. */
  pastLength: number
  /** Per row, in `rows` order: its cache fills slots [0, cached); the rest is padding to mask. */
  cached: number[]
}

export interface KvStore {
  /** Cache length of a sequence in positions (0 for one the store does not hold). */
  length(seqId: string): number
  /** Past tensors for these rows; the returned `rows` say in which order. */
  gather(rows: readonly BatchRow[]): Promise<PastFeeds>
  /**
   * Appends each row's first `newSlots` entries of the call made with `past`.
   * The outputs hold `present_delta.*` ([rows, heads, seq, dim]) or, for graphs
   * without it, `present.*` ([rows, heads, pastLength + seq, dim]); `fromPresent` says which.
   */
  append(
    past: PastFeeds,
    outputs: ort.InferenceSession.OnnxValueMapType,
    layout: { seq: number; fromPresent: boolean },
  ): Promise<void>
  /**
   * Fills an empty sequence's cache with the longest cached prefix of `ids`
   * (the flat block ids of its first blocks). Returns the positions filled, 0 when none.
   */
  reusePrefix(seqId: string, ids: Int32Array): Promise<number>
  /** Whether prompt prefixes are kept for reuse at all. */
  readonly prefixCaching: boolean
  /** Positions of `ids` (flat block ids from the first block) that `reusePrefix` would fill now. */
  prefixHit(ids: Int32Array): number
  /** Keeps the whole chunks of `ids` (blocks already in the sequence's cache) for later prompts. */
  rememberPrefix(seqId: string, ids: Int32Array): Promise<void>
  /** Drops a sequence's entries; idempotent. */
  free(seqId: string): void
  /** Sequences held, for leak checks. */
  readonly sequences: number
  /** Positions held across all sequences. */
  readonly positions: number
}
