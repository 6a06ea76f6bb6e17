/**
 * Schema features XGrammar does not enforce are refused, with where they are;
 * and each refusal is still needed: XGrammar lets a value through that the
 * keyword forbids (if a newer XGrammar enforces one, this test says so).
 */
import t from 'tap'
import { unenforcedFeature } from '../../../src/engine/grammar/schema-features.js'
import { loadXGrammar } from '../../../src/engine/grammar/xgrammar.js'

t.test('the first unenforced feature and its JSON pointer', async (t) => {
  t.equal(
    unenforcedFeature({
      type: 'object',
      properties: {
        a: { type: 'integer', minimum: 0, maximum: 9 },
        b: { type: 'string', format: 'email', maxLength: 9 },
      },
    }),
    undefined,
  )
  t.equal(unenforcedFeature({ type: 'array', uniqueItems: false }), undefined, 'uniqueItems: false asks for nothing')
  t.equal(
    unenforcedFeature({
      type: 'object',
      properties: { 'a/b': { type: 'array', items: { type: 'integer', multipleOf: 2 } } },
    }),
    "'multipleOf' (at #/properties/a~1b/items)",
  )
  t.equal(
    unenforcedFeature({ anyOf: [{ type: 'string' }, { type: 'array', uniqueItems: true }] }),
    "'uniqueItems' (at #/anyOf/1)",
  )
  t.equal(
    unenforcedFeature({ $defs: { x: { type: ['number', 'null'], maximum: 1 } } }),
    "'maximum' on a number, which bounds only its integer part (at #/$defs/x; use an integer, or leave the bound to the client)",
  )
  t.equal(unenforcedFeature({ type: 'string', format: 'iri' }), "the format 'iri' (at #)")
  t.equal(unenforcedFeature({ type: 'integer', not: { const: 1 } }), "'not' (at #)")
})

t.test('each refused feature is one XGrammar lets a violating value through', async (t) => {
  const x = loadXGrammar() as unknown as {
    Grammar: {
      fromJSONSchema(s: string, a: boolean, i: number, sep: [string, string], strict: boolean): Promise<unknown>
    }
    Testings: { isGrammarAcceptString(g: unknown, text: string): Promise<boolean> }
  }
  const accepts = async (schema: object, text: string) =>
    x.Testings.isGrammarAcceptString(
      await x.Grammar.fromJSONSchema(JSON.stringify(schema), false, -1, [',', ':'], true),
      text,
    )
  const cases: Array<[object, string]> = [
    [{ type: 'integer', multipleOf: 3 }, '4'],
    [{ type: 'array', items: { type: 'integer' }, uniqueItems: true }, '[1,1]'],
    [{ type: 'array', items: { type: 'integer' }, contains: { const: 1 } }, '[2]'],
    [{ type: 'integer', not: { const: 1 } }, '1'],
    [{ type: 'number', minimum: -1, maximum: 1 }, '1.5'],
    [{ type: 'string', format: 'iri' }, '"%% no iri %%"'],
  ]
  for (const [schema, violating] of cases)
    t.ok(await accepts(schema, violating), `${JSON.stringify(schema)} lets ${violating} through`)
  t.notOk(await accepts({ type: 'integer', maximum: 1 }, '2'), 'an integer bound is enforced (so it is not refused)')
})
