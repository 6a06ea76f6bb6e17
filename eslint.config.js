// @ts-check
import eslint from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['dist/', 'models/', 'node_modules/', '.tap/', 'coverage/', 'bench/results/', 'scratch/'] },
  eslint.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-restricted-imports': 'off',
    },
  },
  {
    // Layering: routes never import the engine; the engine never imports fastify or prom-client.
    files: ['src/routes/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['**/engine/**', 'onnxruntime-node'] }] },
  },
  {
    files: ['src/engine/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { paths: ['fastify', 'prom-client'], patterns: ['@fastify/*'] }] },
  },
)
