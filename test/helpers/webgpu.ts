/**
 * Whether ONNX Runtime's WebGPU provider works here (a GPU, or Mesa's software
 * Vulkan driver lavapipe as .ci/run installs it). WebGPU tests skip with the
 * reason where it does not. The probe runs in a child process, so a driver
 * that crashes the process (a Vulkan ICD too old for Dawn) skips the tests
 * instead of taking the test file down with it; it uses ONNX Runtime alone,
 * so the project's own code is not what is probed.
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

/** A MatMul whose output stays on the device and is fed back, then read back through a second session. */
const PROBE = `
import ort from 'onnxruntime-node'
import onnxProto from 'onnx-proto'
const { onnx } = onnxProto
const tensor = (name) => ({ name, type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 2 }, { dimValue: 2 }] } } } })
const graph = onnx.ModelProto.encode(onnx.ModelProto.create({
  irVersion: 8,
  opsetImport: [{ domain: '', version: 17 }],
  graph: { name: 'probe', node: [{ opType: 'MatMul', input: ['a', 'b'], output: ['y'] }], input: [tensor('a'), tensor('b')], output: [tensor('y')] },
})).finish()
const a = new ort.Tensor('float32', Float32Array.of(1, 2, 3, 4), [2, 2])
const onDevice = await ort.InferenceSession.create(graph, { executionProviders: ['webgpu'], preferredOutputLocation: 'gpu-buffer', logSeverityLevel: 3 })
const toHost = await ort.InferenceSession.create(graph, { executionProviders: ['webgpu'], logSeverityLevel: 3 })
const y = (await onDevice.run({ a, b: a })).y
const back = Array.from((await toHost.run({ a: y, b: a })).y.data)
if (back.join() !== '37,54,81,118') throw new Error('WebGPU computed ' + back.join())
`

let reason: Promise<string | false> | undefined

/** `false` when WebGPU works; otherwise why not, for `t.test(name, { skip }, …)`. */
export function webgpuSkip(): Promise<string | false> {
  reason ??= promisify(execFile)(process.execPath, ['--input-type=module', '-e', PROBE], { timeout: 120_000 }).then(
    () => false,
    (err: Error & { stderr?: string; signal?: string }) => {
      const line =
        /Failed to get a WebGPU adapter[^\n]*/.exec(err.stderr ?? '')?.[0] ??
        (err.signal === null || err.signal === undefined
          ? err.stderr?.trim().split('\n').at(-1)
          : `killed by ${err.signal}`)
      return `WebGPU does not work here (${line ?? err.message}); .ci/run installs Mesa's lavapipe for it`
    },
  )
  return reason
}
