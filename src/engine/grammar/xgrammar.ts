/**
 * XGrammar (npm `@mlc-ai/web-xgrammar`, the WebAssembly build WebLLM uses):
 * the grammar engine behind constrained decoding, as vLLM and SGLang use its
 * native build.
 *
 * Its package says `"type": "module"` but ships a UMD bundle, which Node
 * cannot import as ES module (`require is not defined`) nor require (the
 * package type makes it ESM). It is loaded here as the CommonJS script it is.
 * Each load is an independent instance with its own WebAssembly memory,
 * instantiated on first use: a schema XGrammar cannot convert makes it abort
 * (C++ LOG(FATAL)), after which that instance never answers again, so schemas
 * are tried first on a throwaway instance (schema-probe.ts).
 *
 * Only the parts the engine uses are typed.
 */
import { readFileSync } from 'node:fs'
import Module, { createRequire } from 'node:module'
import { dirname } from 'node:path'

export interface XGrammar {
  Grammar: {
    fromJSONSchema(
      schema: string,
      anyWhitespace: boolean,
      indent: number,
      separators: [string, string],
      strictMode: boolean,
    ): Promise<{ dispose(): void }>
    fromEBNF(ebnf: string): Promise<{ dispose(): void }>
  }
  TokenizerInfo: {
    createTokenizerInfo(
      encodedVocab: string[],
      vocabType: 'byte_level',
      prependSpace: boolean,
      vocabSize: number,
      stopTokenIds: number[],
    ): Promise<XTokenizerInfo>
  }
  GrammarCompiler: { createGrammarCompiler(info: XTokenizerInfo, cacheEnabled: boolean): Promise<XGrammarCompiler> }
  GrammarMatcher: { createGrammarMatcher(grammar: XCompiledGrammar): Promise<XGrammarMatcher> }
}

export interface XTokenizerInfo {
  getVocabSize(): number
  dispose(): void
}

export interface XGrammarCompiler {
  /** JSON schema → grammar; `indent` −1 is one line; `strictMode` refuses properties and items the schema does not name. */
  compileJSONSchema(
    schema: string,
    anyWhitespace: boolean,
    indent: number,
    separators: [string, string],
    strictMode: boolean,
  ): Promise<XCompiledGrammar>
  dispose(): void
}

export interface XCompiledGrammar {
  dispose(): void
}

export interface XGrammarMatcher {
  /** One bit per id, 32 ids per word (bit i of word w is id 32w + i): set where the grammar allows the id. */
  getNextTokenBitmask(): Promise<Int32Array>
  acceptToken(id: number): boolean
  isTerminated(): boolean
  dispose(): void
}

/** A fresh, independent instance of the library. */
export function loadXGrammar(): XGrammar {
  const path = createRequire(import.meta.url).resolve('@mlc-ai/web-xgrammar')
  // Node's own CommonJS loader, fed the bundle's text: `module._compile` keeps require and dynamic import working inside it.
  const commonJs = Module as unknown as { new (id: string): CommonJsModule; _nodeModulePaths(dir: string): string[] }
  const module = new commonJs(path)
  module.filename = path
  module.paths = commonJs._nodeModulePaths(dirname(path))
  module._compile(readFileSync(path, 'utf8'), path)
  return module.exports as XGrammar
}

interface CommonJsModule {
  filename: string
  paths: string[]
  exports: unknown
  _compile(source: string, filename: string): void
}
