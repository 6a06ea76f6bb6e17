/** `models/kelix-tiny` at the repository root (from src/ or dist/ alike); its own module so the server's config can name it without loading the graph builder. */
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const DEFAULT_MODEL_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'models', 'kelix-tiny')
