/**
 * GPT-2's byte-level alphabet: every byte is written as one printable
 * character in a byte-level BPE vocabulary. Reading a token's characters back
 * through this table gives the raw bytes the token stands for.
 */

/** Maps each character of the byte-level alphabet to the byte it encodes. */
export const BYTE_OF_CHAR: ReadonlyMap<string, number> = (() => {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)
  const table = new Map<string, number>()
  let extra = 0
  for (let b = 0; b < 256; b++) table.set(String.fromCodePoint(printable(b) ? b : 256 + extra++), b)
  return table
})()

/** The bytes a byte-level token string stands for, or undefined when a character is outside the alphabet. */
export function byteLevelBytes(token: string): Uint8Array | undefined {
  const bytes = new Uint8Array(token.length)
  let n = 0
  for (const ch of token) {
    const b = BYTE_OF_CHAR.get(ch)
    if (b === undefined) return undefined
    bytes[n++] = b
  }
  return bytes.subarray(0, n)
}

/** Each byte's character in the byte-level alphabet (the inverse of BYTE_OF_CHAR). */
const CHAR_OF_BYTE: readonly string[] = (() => {
  const chars: string[] = []
  for (const [ch, b] of BYTE_OF_CHAR) chars[b] = ch
  return chars
})()

/** `bytes` written in the byte-level alphabet, as a byte-level vocabulary writes a token. */
export function byteLevelString(bytes: Uint8Array): string {
  let out = ''
  for (const b of bytes) out += CHAR_OF_BYTE[b] as string
  return out
}
