/**
 * Resident memory of a process from /proc/<pid>/smaps_rollup. PSS divides each
 * shared page among the processes mapping it, so a weight file that ONNX
 * Runtime maps (the embedding table, which two sessions read) counts once;
 * RSS counts every mapping of it. GB are 10^9 bytes.
 */
import { readFile } from 'node:fs/promises'

export interface Resident {
  rssGB: number
  pssGB: number
  /** PSS of anonymous memory (heaps, ONNX Runtime's packed weights, the KV cache). */
  pssAnonGB: number
  /** PSS of mapped files (weights ONNX Runtime maps rather than copies). */
  pssFileGB: number
}

export async function residentMemory(pid: number | 'self' = 'self'): Promise<Resident> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8')
  const gb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? Number.NaN) / 1e6
  return { rssGB: gb('Rss'), pssGB: gb('Pss'), pssAnonGB: gb('Pss_Anon'), pssFileGB: gb('Pss_File') }
}
