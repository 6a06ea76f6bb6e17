/**
 * The execution providers the tests' real engines run on: `cpu` unless
 * KELIX_TEST_EXECUTION_PROVIDERS names others (`webgpu` runs the HTTP and
 * engine suites with the KV cache on a GPU; README "GPUs").
 */
import type { ExecutionProvider } from '../../src/engine/providers.js'

export function testProviders(): ExecutionProvider[] {
  const listed = process.env.KELIX_TEST_EXECUTION_PROVIDERS
  return listed === undefined || listed === '' ? ['cpu'] : (listed.split(',') as ExecutionProvider[])
}
