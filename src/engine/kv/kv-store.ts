/**
 * Where the decoder's keys and values live between steps.
 *
 * The engine talks to this interface only, so a device-resident store (for
 * example WebGPU buffers fed back with `preferredOutputLocation: 'gpu-buffer'`)
 * can replace the host one without touching the decode loop.
 */
import type ort from 'onnxruntime-node'

/** One row of a decoder call: which sequence, and how many new slots it fills this call. */
export interface BatchRow {
  seqId: string
  newSlots: number
}

/** The past-side inputs of one decoder call. */
export interface PastFeeds {
  /** `past_key_values.{i}.key/value`, each [rows, kv_heads, past, head_dim]. */
  tensors: Record<string, ort.Tensor>
  /** Cache slots per row (the longest sequence's length). */
  pastLength: number
  /** Per row: how many leading slots are padding (masked out). */
  padding: number[]
}

export interface KvStore {
  /** Cache length of a sequence in positions (0 for one the store does not hold). */
  length(seqId: string): number
  /** Past tensors for these rows, each sequence's entries right-aligned to the longest. */
  gather(rows: readonly BatchRow[]): PastFeeds
  /**
   * Appends each row's first `newSlots` entries of this call's output. The outputs
   * hold `present_delta.*` ([rows, heads, seq, dim]) or, for graphs without it,
   * `present.*` ([rows, heads, past + seq, dim]); `fromPresent` says which.
   */
  append(rows: readonly BatchRow[], outputs: ort.InferenceSession.OnnxValueMapType, layout: { seq: number; pastLength: number; fromPresent: boolean }): void
  /** Drops a sequence's entries; idempotent. */
  free(seqId: string): void
  /** Sequences held, for leak checks. */
  readonly sequences: number
  /** Positions held across all sequences. */
  readonly positions: number
}
