/**
 * Checkpoint tensors no graph reads (or reads only in part), grouped by family
 * (indices replaced by `{i}`), for the conversion summary: never silently dropped.
 */
export interface UnusedFamily {
  family: string
  tensors: number
  parameters: number
}

export interface PartlyUsedFamily {
  family: string
  tensors: number
  /** Rows read of each tensor, of the rows it stores (the first tensor's, as the family shares a shape). */
  rows: number
  of: number
}

/** `model.model.layers.3.attn.q_proj.weight` → `model.model.layers.{i}.attn.q_proj.weight`. */
export function familyOf(key: string): string {
  return key.replace(/\.\d+(?=\.|$)/g, '.{i}')
}

export function unusedFamilies(
  keys: readonly string[],
  parameters: (key: string) => number,
  familyOfKey: (key: string) => string = familyOf,
): UnusedFamily[] {
  const families = new Map<string, UnusedFamily>()
  for (const key of keys) {
    const family = familyOfKey(key)
    const entry = families.get(family) ?? { family, tensors: 0, parameters: 0 }
    entry.tensors++
    entry.parameters += parameters(key)
    families.set(family, entry)
  }
  return [...families.values()]
}

export function partlyUsedFamilies(parts: ReadonlyMap<string, { rows: number; of: number }>): PartlyUsedFamily[] {
  const families = new Map<string, PartlyUsedFamily>()
  for (const [key, part] of parts) {
    const family = familyOf(key)
    const entry = families.get(family) ?? { family, tensors: 0, ...part }
    entry.tensors++
    families.set(family, entry)
  }
  return [...families.values()]
}
