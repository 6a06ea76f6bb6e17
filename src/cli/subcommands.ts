/**
 * `kelix-serve`'s subcommands, in --help order. Each module is imported only
 * when its subcommand runs, so `kelix-serve --help` loads no engine or server.
 */
import type { Command } from './command.js'

export interface Subcommand {
  name: string
  /** One line for `kelix-serve --help`. */
  summary: string
  load(): Promise<Command>
}

export const SUBCOMMANDS: readonly Subcommand[] = [
  {
    name: 'serve',
    summary: 'serve a model directory over the OpenAI-compatible HTTP API',
    load: async () => (await import('./serve.js')).serve,
  },
  {
    name: 'convert',
    summary: 'convert a Kelix checkpoint into a model directory',
    load: async () => (await import('./convert.js')).convert,
  },
  {
    name: 'build-tiny',
    summary: 'write the tiny Kelix model (the embedded default)',
    load: async () => (await import('./build-tiny.js')).buildTiny,
  },
  {
    name: 'bench',
    summary: 'run the benchmarks (a source checkout with dev dependencies only)',
    load: async () => (await import('./bench.js')).bench,
  },
]
