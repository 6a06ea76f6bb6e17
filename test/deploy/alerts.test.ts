/**
 * The alert rules: the chart ships the same file, `promtool check rules` accepts it, and the
 * rule unit tests (deploy/prometheus/kelix-alerts.test.yml) fire each alert on a known series.
 * promtool comes with Debian's `prometheus` package (.ci/run installs it).
 */
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import t from 'tap'
import { ROOT, alertRules, readText, which } from './helpers.js'

const PROMTOOL = which('promtool')
const NO_PROMTOOL = PROMTOOL ? false : 'promtool is not installed (apt-get install prometheus)'

t.test('the chart ships the alert rules file unchanged', async (t) => {
  t.equal(
    readText('helm/kelix-serve/files/kelix-alerts.yml'),
    readText('deploy/prometheus/kelix-alerts.yml'),
    'cp deploy/prometheus/kelix-alerts.yml helm/kelix-serve/files/',
  )
})

t.test('every alert has a severity, a summary, a description and a for duration', async (t) => {
  for (const rule of alertRules()) {
    t.match(rule.labels?.severity, /^(warning|critical)$/, `${rule.alert} severity`)
    t.ok(rule.annotations?.summary, `${rule.alert} summary`)
    t.ok(rule.annotations?.description, `${rule.alert} description`)
    t.match(rule.for, /^\d+m$/, `${rule.alert} waits before firing`)
  }
})

t.test('promtool check rules accepts the alert rules', { skip: NO_PROMTOOL }, async (t) => {
  const out = execFileSync(PROMTOOL!, ['check', 'rules', join(ROOT, 'deploy/prometheus/kelix-alerts.yml')], {
    encoding: 'utf8',
  })
  t.match(out, /SUCCESS: 7 rules found/)
})

t.test('promtool rule unit tests fire every alert on its known series', { skip: NO_PROMTOOL }, async (t) => {
  const out = execFileSync(PROMTOOL!, ['test', 'rules', join(ROOT, 'deploy/prometheus/kelix-alerts.test.yml')], {
    encoding: 'utf8',
  })
  t.match(out, /SUCCESS/)
  const tested = [...readText('deploy/prometheus/kelix-alerts.test.yml').matchAll(/alertname: (\w+)/g)].map((m) => m[1])
  for (const rule of alertRules()) t.ok(tested.includes(rule.alert), `${rule.alert} has a unit test`)
})

t.test(
  'promtool check config accepts the docker-compose Prometheus configuration',
  { skip: NO_PROMTOOL },
  async (t) => {
    const out = execFileSync(PROMTOOL!, ['check', 'config', join(ROOT, 'docker/prometheus.yml')], { encoding: 'utf8' })
    t.match(out, /SUCCESS/)
  },
)
