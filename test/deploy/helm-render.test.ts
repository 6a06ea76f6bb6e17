/**
 * The chart's templates rendered and the manifests checked. Helm has no package here, so
 * test/deploy/helm-render (Go's text/template with sprig, the engine and function library Helm
 * uses, plus Helm's include/tpl/required/toYaml and .Files) renders them like `helm template`.
 * Needs Debian's golang-go, golang-github-masterminds-sprig-dev and golang-github-ghodss-yaml-dev.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { parseAllDocuments } from 'yaml'
import { CHART, ROOT, alertRules, readText, which } from './helpers.js'

const GOPATH = '/usr/share/gocode'
const GO = which('go')
const SKIP = !GO
  ? 'go is not installed (apt-get install golang-go golang-github-masterminds-sprig-dev golang-github-ghodss-yaml-dev)'
  : !existsSync(join(GOPATH, 'src/github.com/Masterminds/sprig'))
    ? 'sprig is not installed (apt-get install golang-github-masterminds-sprig-dev golang-github-ghodss-yaml-dev)'
    : false

interface Manifest {
  kind: string
  metadata: { name: string; labels?: Record<string, string> }
  spec?: Record<string, unknown>
  data?: Record<string, string>
  stringData?: Record<string, string>
}

interface Container {
  name: string
  env?: { name: string; value: string }[]
  resources: { limits?: Record<string, unknown>; requests?: Record<string, unknown> }
  securityContext: Record<string, unknown>
  volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[]
  startupProbe: { httpGet: { path: string; port: string } }
  readinessProbe: { httpGet: { path: string; port: string } }
  livenessProbe: { httpGet: { path: string; port: string } }
  lifecycle?: { preStop: { exec: { command: string[] } } }
}

interface PodSpec {
  terminationGracePeriodSeconds: number
  securityContext: Record<string, unknown>
  containers: Container[]
  initContainers?: Container[]
  volumes: Record<string, unknown>[]
}

t.test('the chart renders and its manifests hold together', { skip: SKIP }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kelix-helm-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const renderer = join(dir, 'helm-render')
  execFileSync(GO!, ['build', '-o', renderer, '.'], {
    cwd: join(ROOT, 'test/deploy/helm-render'),
    env: { ...process.env, GO111MODULE: 'off', GOPATH, GOCACHE: join(dir, 'gocache'), GOFLAGS: '' },
  })

  const render = (...valuesFiles: string[]) => {
    const out = spawnSync(renderer, [CHART, ...valuesFiles.map((f) => (f.startsWith('/') ? f : join(CHART, f)))], {
      encoding: 'utf8',
    })
    return { status: out.status, stderr: out.stderr, manifests: out.status === 0 ? parse(out.stdout) : [] }
  }
  const valuesFile = (name: string, text: string) => {
    const path = join(dir, name)
    writeFileSync(path, text)
    return path
  }

  await t.test('default values: a CPU Deployment with the three probes, preStop and a read-only root', async (t) => {
    const { status, stderr, manifests } = render()
    t.equal(status, 0, stderr)
    t.same(kinds(manifests), ['ConfigMap', 'Deployment', 'PodDisruptionBudget', 'Service', 'ServiceAccount'])
    const pod = podSpec(manifests)
    const c = pod.containers[0]!
    t.same(
      [c.startupProbe.httpGet, c.readinessProbe.httpGet, c.livenessProbe.httpGet],
      [
        { path: '/health/startup', port: 'http' },
        { path: '/health/ready', port: 'http' },
        { path: '/health/live', port: 'http' },
      ],
    )
    t.same(c.lifecycle?.preStop.exec.command, ['sleep', '10'])
    t.equal(pod.terminationGracePeriodSeconds, 60)
    t.same(pod.securityContext, {
      fsGroup: 10001,
      runAsGroup: 10001,
      runAsNonRoot: true,
      runAsUser: 10001,
      seccompProfile: { type: 'RuntimeDefault' },
    })
    t.same(c.securityContext, {
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      readOnlyRootFilesystem: true,
    })
    t.same(c.volumeMounts, [{ name: 'tmp', mountPath: '/tmp' }])
    t.same(pod.volumes, [{ name: 'tmp', emptyDir: { sizeLimit: '1Gi' } }])
    t.same(c.resources, { limits: { memory: '8Gi' }, requests: { cpu: '2', memory: '4Gi' } })
    t.same(find(manifests, 'ConfigMap').data, {
      KELIX_HOST: '0.0.0.0',
      KELIX_PORT: '8000',
      KELIX_LOG_LEVEL: 'info',
      KELIX_MODEL_DIR: '/app/models/kelix-tiny',
      KELIX_EXECUTION_PROVIDERS: 'cpu',
      KELIX_DRAIN_TIMEOUT_MS: '30000',
    })
    t.same(find(manifests, 'PodDisruptionBudget').spec?.maxUnavailable, 1)
    t.equal(find(manifests, 'Deployment').spec?.replicas, 1)
  })

  await t.test(
    'GPU values: nvidia.com/gpu, the CUDA provider, the model PVC read-only, API keys from an existing Secret',
    async (t) => {
      const { status, stderr, manifests } = render('ci/gpu-values.yaml')
      t.equal(status, 0, stderr)
      t.same(
        kinds(manifests),
        ['ConfigMap', 'Deployment', 'PodDisruptionBudget', 'Service', 'ServiceAccount'],
        'no chart Secret with existingSecret',
      )
      const pod = podSpec(manifests)
      const c = pod.containers[0]!
      t.same(c.resources.limits, { memory: '8Gi', 'nvidia.com/gpu': 1 })
      t.equal(pod.terminationGracePeriodSeconds, 90)
      const env = find(manifests, 'ConfigMap').data!
      t.equal(env.KELIX_EXECUTION_PROVIDERS, 'cuda,cpu')
      t.equal(env.KELIX_MODEL_DIR, '/models/kelix-7b')
      t.equal(env.KELIX_API_KEYS_FILE, '/etc/kelix/api-keys/api-keys')
      t.same(pod.volumes.slice(1), [
        { name: 'model', persistentVolumeClaim: { claimName: 'kelix-models', readOnly: true } },
        { name: 'api-keys', secret: { secretName: 'kelix-api-keys', defaultMode: 0o440 } },
      ])
      t.same(c.volumeMounts.slice(1), [
        { name: 'model', mountPath: '/models', readOnly: true },
        { name: 'api-keys', mountPath: '/etc/kelix/api-keys', readOnly: true },
      ])
    },
  )

  await t.test(
    'autoscaling values: an HPA on waiting requests, monitoring resources and the keys Secret',
    async (t) => {
      const { status, stderr, manifests } = render('ci/autoscaling-values.yaml')
      t.equal(status, 0, stderr)
      t.same(kinds(manifests), [
        'ConfigMap',
        'ConfigMap',
        'Deployment',
        'HorizontalPodAutoscaler',
        'PodDisruptionBudget',
        'PrometheusRule',
        'Secret',
        'Service',
        'ServiceAccount',
        'ServiceMonitor',
      ])
      t.equal(find(manifests, 'Deployment').spec?.replicas, undefined, 'the HPA owns the replica count')
      t.same(find(manifests, 'HorizontalPodAutoscaler').spec?.metrics, [
        {
          type: 'Pods',
          pods: { metric: { name: 'kelix_num_requests_waiting' }, target: { type: 'AverageValue', averageValue: '2' } },
        },
      ])
      t.same(find(manifests, 'PodDisruptionBudget').spec?.minAvailable, 1)
      t.equal(find(manifests, 'Secret').stringData?.['api-keys'], 'sk-test-one\nsk-test-two\n')
      const monitor = find(manifests, 'ServiceMonitor')
      t.equal(monitor.metadata.labels?.release, 'kube-prometheus-stack')
      t.equal(monitor.spec?.jobLabel, 'app.kubernetes.io/name')
      t.equal(
        find(manifests, 'Service').metadata.labels?.['app.kubernetes.io/name'],
        'kelix-serve',
        'so job="kelix-serve", as the alert rules expect',
      )
      t.same((monitor.spec?.endpoints as { port: string; path: string }[])[0]?.path, '/metrics')
      t.same(find(manifests, 'PrometheusRule').spec?.groups, [{ name: 'kelix-serve', rules: alertRules() }])
      const dashboard = manifests.find((m) => m.kind === 'ConfigMap' && m.metadata.name.endsWith('-dashboard'))
      t.equal(dashboard?.metadata.labels?.grafana_dashboard, '1')
      t.equal(`${dashboard?.data?.['kelix-serve.json']}\n`, readText('deploy/grafana/kelix-serve.json'))
    },
  )

  await t.test('init container values: the model is fetched into an emptyDir', async (t) => {
    const { status, stderr, manifests } = render('ci/init-container-values.yaml')
    t.equal(status, 0, stderr)
    const pod = podSpec(manifests)
    const init = pod.initContainers?.[0]
    t.equal(init?.name, 'fetch-model')
    t.same(init?.env, [{ name: 'KELIX_MODEL_TARGET', value: '/models' }])
    t.same(pod.volumes[1], { name: 'model', emptyDir: { sizeLimit: '40Gi' } })
    t.equal(find(manifests, 'ConfigMap').data?.KELIX_INTRA_OP_THREADS, '4')
  })

  await t.test(
    "inferencePool: an InferencePool of the release's pods for the Endpoint Picker, and its objective",
    async (t) => {
      const { status, stderr, manifests } = render('ci/inference-pool-values.yaml')
      t.equal(status, 0, stderr)
      const pool = find(manifests, 'InferencePool') as Manifest & { apiVersion: string }
      const deployment = find(manifests, 'Deployment')
      t.equal(pool.apiVersion, 'inference.networking.k8s.io/v1')
      t.same(pool.spec, {
        selector: {
          matchLabels: (deployment.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels,
        },
        targetPorts: [{ number: 8000 }],
        endpointPickerRef: { name: 'kelix-epp', port: { number: 9002 }, failureMode: 'FailOpen' },
      })
      const objective = find(manifests, 'InferenceObjective') as Manifest & { apiVersion: string }
      t.equal(objective.apiVersion, 'inference.networking.x-k8s.io/v1alpha2')
      t.same(objective.spec, { priority: 10, poolRef: { name: pool.metadata.name } })
      t.notOk(kinds(render().manifests).includes('InferencePool'), 'off by default')
    },
  )

  await t.test('an InferencePool without its Endpoint Picker fails the render with a message', async (t) => {
    const { status, stderr } = render(valuesFile('no-picker.yaml', 'inferencePool:\n  enabled: true\n'))
    t.equal(status, 1)
    t.match(stderr, 'inferencePool.enabled: set inferencePool.endpointPicker.name')
  })

  await t.test('a grace period shorter than preStop plus the drain fails the render with a message', async (t) => {
    const { status, stderr } = render(
      valuesFile('short-grace.yaml', 'shutdown:\n  terminationGracePeriodSeconds: 40\n'),
    )
    t.equal(status, 1)
    t.match(
      stderr,
      'shutdown.terminationGracePeriodSeconds (40) must exceed shutdown.preStopSleepSeconds + server.drainTimeoutMs in seconds (40)',
    )
  })

  await t.test('a PVC model source without a claim fails the render with a message', async (t) => {
    const { status, stderr } = render(valuesFile('no-claim.yaml', 'model:\n  source: pvc\n'))
    t.equal(status, 1)
    t.match(stderr, 'model.source is pvc: set model.pvc.claimName')
  })
})

function parse(text: string): Manifest[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as Manifest | null)
    .filter((m): m is Manifest => m !== null)
}

function kinds(manifests: Manifest[]): string[] {
  return manifests.map((m) => m.kind)
}

function find(manifests: Manifest[], kind: string): Manifest {
  const found = manifests.find((m) => m.kind === kind)
  if (!found) throw new Error(`no ${kind} rendered`)
  return found
}

function podSpec(manifests: Manifest[]): PodSpec {
  return (find(manifests, 'Deployment').spec as { template: { spec: PodSpec } }).template.spec
}
