/**
 * The chart's values against values.schema.json (Helm validates the same way on install), and the
 * values-level rules the templates rely on. Helm itself has no package here: the templates are
 * rendered by test/deploy/helm-render.test.ts where Go is installed.
 */
import { Ajv } from 'ajv'
import t from 'tap'
import { listFiles, readText, readYaml } from './helpers.js'

type Values = Record<string, unknown>

const schema = JSON.parse(readText('helm/kelix-serve/values.schema.json')) as object
const defaults = readYaml<Values>('helm/kelix-serve/values.yaml')
const validate = new Ajv({ allErrors: true }).compile(schema)

/** Helm's merge of a values file onto the chart's: maps merge deeply, null deletes a key. */
function coalesce(override: Values, base: Values): Values {
  const out: Values = { ...base }
  for (const [key, value] of Object.entries(override)) {
    const prev = out[key]
    if (value === null) delete out[key]
    else if (isMap(value) && isMap(prev)) out[key] = coalesce(value, prev)
    else out[key] = value
  }
  return out
}
const isMap = (v: unknown): v is Values => typeof v === 'object' && v !== null && !Array.isArray(v)

function errors(values: Values): string[] {
  return validate(values) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`)
}

const ciFiles = listFiles('helm/kelix-serve/ci', /\.yaml$/)

t.test('values.yaml validates against values.schema.json', async (t) => {
  t.same(errors(defaults), [])
})

t.test('each example values file in ci/ validates once merged onto values.yaml', async (t) => {
  t.ok(ciFiles.length >= 3)
  for (const file of ciFiles) t.same(errors(coalesce(readYaml<Values>(file), defaults)), [], file)
})

t.test('a values file with wrong types and unknown enum values fails, naming each key', async (t) => {
  const bad = coalesce(readYaml<Values>('test/deploy/fixtures/bad-values.yaml'), defaults)
  t.same(errors(bad), [
    '/replicaCount must be integer',
    '/image/pullPolicy must be equal to one of the allowed values',
    '/server/port must be integer',
  ])
})

t.test('a misspelt key fails instead of being ignored', async (t) => {
  t.same(errors(coalesce({ autoscaling: { enabeld: true } }, defaults)), [
    '/autoscaling must NOT have additional properties',
  ])
  t.same(errors(coalesce({ model: { source: 's3' } }, defaults)), [
    '/model/source must be equal to one of the allowed values',
  ])
})

t.test('the grace period outlasts preStop plus the drain in every values file', async (t) => {
  for (const [name, values] of [
    ['values.yaml', defaults] as const,
    ...ciFiles.map((f) => [f, coalesce(readYaml<Values>(f), defaults)] as const),
  ]) {
    const shutdown = values.shutdown as { preStopSleepSeconds: number; terminationGracePeriodSeconds: number }
    const drainMs = (values.server as { drainTimeoutMs: number }).drainTimeoutMs
    t.ok(
      shutdown.terminationGracePeriodSeconds > shutdown.preStopSleepSeconds + Math.ceil(drainMs / 1000),
      `${name}: ${shutdown.terminationGracePeriodSeconds} s > ${shutdown.preStopSleepSeconds} s + ${drainMs} ms`,
    )
  }
})

t.test('every .Values path the templates read exists in values.yaml', async (t) => {
  const templates = listFiles('helm/kelix-serve/templates', /\.(yaml|tpl|txt)$/)
  const paths = new Set<string>()
  for (const file of templates)
    for (const m of readText(file).matchAll(/\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)/g)) paths.add(m[1]!.slice(1))
  t.ok(paths.size > 40, `${paths.size} paths`)
  for (const path of [...paths].sort()) {
    let node: unknown = defaults
    for (const key of path.split('.')) node = isMap(node) && key in node ? node[key] : undefined
    t.not(node, undefined, `.Values.${path}`)
  }
})
