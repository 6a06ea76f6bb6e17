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
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: ['fastify', 'prom-client'],
          patterns: ['@fastify/*', '**/batching/**', '**/http/**', '**/server/**', '**/routes/**'],
        },
      ],
    },
  },
  {
    // The HTTP kit sits below the routes and the composition root.
    files: ['src/http/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: ['**/routes/**', '**/server/**', '**/engine/**', '**/batching/**'] },
      ],
    },
  },
  {
    // A file's folder says which thread it runs on; neither side loads the other's code.
    files: ['src/batching/http-thread/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { paths: ['onnxruntime-node'], patterns: ['**/engine-thread/**', '**/engine/**'] },
      ],
    },
  },
  {
    files: ['src/batching/engine-thread/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: ['fastify', 'prom-client'],
          patterns: ['**/http-thread/**', '**/http/**', '**/server/**', '**/routes/**'],
        },
      ],
    },
  },
)
