/**
 * The Kelix reference set (../shared/kelix-reference/kelix): a tiny checkpoint
 * in the published layout and the reference implementation's outputs, with
 * the tolerances of its README.
 */
import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import type { ChatMessage } from '../../src/engine/types.js'

export const REFERENCE_DIR = fileURLToPath(new URL('../../../shared/kelix-reference/kelix/', import.meta.url))
export const REFERENCE_CHECKPOINT = `${REFERENCE_DIR}checkpoint`

type Matrix = number[][]

export interface KelixReference {
  special_tokens: Record<string, number>
  visual_tokenizer: Array<{
    name: string
    png: string
    grid_thw: number[]
    pixel_patches: Matrix
    local_codes: Matrix
    unified_ids: Matrix
    min_argmin_gap: number
  }>
  prompts: Record<
    string,
    {
      messages: Array<{ role: string; content: string | Array<{ type: string; text?: string; image?: string }> }>
      ids: number[]
      images: string[]
      blocks: Matrix
    }
  >
  decoder: { block_ids: Matrix; position_ids: number[]; hidden_states_prenorm: Matrix }
  block_decoder: { hidden_state: number[]; prefix_ids: number[]; slot_logits: Matrix }
  chats: Array<{ prompt: string; tokens: number[]; text: string; finish_reason: string; top2_logit_gaps: number[] }>
}

export function readReference(): KelixReference {
  return JSON.parse(readFileSync(`${REFERENCE_DIR}reference.json`, 'utf8')) as KelixReference
}

export function referenceImage(name: string): Promise<Buffer> {
  return readFile(`${REFERENCE_DIR}images/${name}.png`)
}

/** The README's rule: max|a − r| ≤ tol · max(1, max|r|). Returns the worst |a − r| and the bound. */
export function relativeError(
  actual: ArrayLike<number>,
  reference: ArrayLike<number>,
  tol: number,
): { worst: number; bound: number } {
  if (actual.length !== reference.length) throw new Error(`${actual.length} values against ${reference.length}`)
  let worst = 0
  let largest = 0
  for (let i = 0; i < reference.length; i++) {
    worst = Math.max(worst, Math.abs((actual[i] as number) - (reference[i] as number)))
    largest = Math.max(largest, Math.abs(reference[i] as number))
  }
  return { worst, bound: tol * Math.max(1, largest) }
}

export function argmax(values: ArrayLike<number>): number {
  let best = 0
  for (let i = 1; i < values.length; i++) if ((values[i] as number) > (values[best] as number)) best = i
  return best
}

/** The reference's messages, its images (named) read from kelix/images. */
export async function chatMessages(messages: KelixReference['prompts'][string]['messages']): Promise<ChatMessage[]> {
  return Promise.all(
    messages.map(async (m) => ({
      role: m.role as ChatMessage['role'],
      content:
        typeof m.content === 'string'
          ? m.content
          : await Promise.all(
              m.content.map(async (part) =>
                part.type === 'image'
                  ? {
                      type: 'image' as const,
                      image: { bytes: await referenceImage(part.image as string), detail: 'auto' as const },
                    }
                  : { type: 'text' as const, text: part.text as string },
              ),
            ),
    })),
  )
}
