/**
 * Whether ONNX Runtime's WebGPU provider loads here (a GPU, or Mesa's software
 * Vulkan driver lavapipe as .ci/run installs it). WebGPU tests skip with the
 * reason where it does not.
 */
import { chooseProviders } from '../../src/engine/providers.js'

let reason: Promise<string | false> | undefined

/** `false` when WebGPU loads; otherwise why not, for `t.test(name, { skip }, …)`. */
export function webgpuSkip(): Promise<string | false> {
  reason ??= chooseProviders(['webgpu']).then(
    () => false,
    (err: Error) => `WebGPU does not load here (${err.message}); .ci/run installs Mesa's lavapipe for it`,
  )
  return reason
}
