/** Every YAML file of the chart (templates aside), deploy/ and docker/ parses. */
import t from 'tap'
import { listFiles, parseYamlFile } from './helpers.js'

const YAML = /\.ya?ml$/

t.test('the YAML files outside Helm templates are well-formed', async (t) => {
  const files = [
    ...listFiles('helm', YAML).filter((f) => !f.includes('/templates/')),
    ...listFiles('deploy', YAML),
    ...listFiles('docker', YAML),
  ]
  for (const expected of [
    'helm/kelix-serve/Chart.yaml',
    'helm/kelix-serve/values.yaml',
    'helm/kelix-serve/files/kelix-alerts.yml',
    'deploy/prometheus/kelix-alerts.yml',
    'docker/docker-compose.yml',
  ]) {
    t.ok(files.includes(expected), `${expected} is checked`)
  }
  for (const file of files) {
    const docs = parseYamlFile(file)
    t.ok(docs.length > 0 && docs.every((d) => d !== null && typeof d === 'object'), `${file} holds YAML mappings`)
  }
})

t.test('a malformed YAML file is reported with its name', async (t) => {
  t.throws(() => parseYamlFile('test/deploy/fixtures/malformed.yaml'), /test\/deploy\/fixtures\/malformed\.yaml: /)
})

t.test('the chart metadata names the chart and its version', async (t) => {
  const [chart] = parseYamlFile('helm/kelix-serve/Chart.yaml') as {
    apiVersion: string
    name: string
    version: string
    appVersion: string
  }[]
  t.equal(chart?.apiVersion, 'v2')
  t.equal(chart?.name, 'kelix-serve')
  t.match(chart?.version, /^\d+\.\d+\.\d+$/)
  t.match(chart?.appVersion, /^\d+\.\d+\.\d+$/)
})

t.test('docker-compose runs the server, Prometheus with the alert rules and Grafana with the dashboard', async (t) => {
  const [compose] = parseYamlFile('docker/docker-compose.yml') as {
    services: Record<string, { volumes?: string[]; read_only?: boolean }>
  }[]
  t.same(Object.keys(compose?.services ?? {}), ['kelix-serve', 'prometheus', 'grafana'])
  t.equal(compose?.services['kelix-serve']?.read_only, true)
  t.ok(
    compose?.services.prometheus?.volumes?.includes(
      '../deploy/prometheus/kelix-alerts.yml:/etc/prometheus/rules/kelix-alerts.yml:ro',
    ),
  )
  t.ok(
    compose?.services.grafana?.volumes?.includes(
      '../deploy/grafana/kelix-serve.json:/var/lib/grafana/dashboards/kelix-serve.json:ro',
    ),
  )
})
