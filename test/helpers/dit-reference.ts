/**
 * The Kelix-DiT reference set (../shared/kelix-reference/dit): a tiny
 * `SanaModel` checkpoint in the published layout and what the reference
 * implementation computes with it (connector, velocities, sampling runs).
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { Nested } from './tensors.js'

export const DIT_REFERENCE_DIR = fileURLToPath(new URL('../../../shared/kelix-reference/dit/', import.meta.url))
export const DIT_REFERENCE_CHECKPOINT = `${DIT_REFERENCE_DIR}checkpoint`

export interface DitVelocityCase {
  name: string
  latents: Nested
  sigma: number
  timestep: number
  timestep_long: number
  condition: Nested
  condition_mask: number[]
  velocity: Nested
}

export interface DitSamplingRun {
  name: string
  steps: number
  shift: number
  guidance: number
  sigmas: number[]
  timesteps: number[]
  timesteps_long: number[]
  /** Names the velocity case whose condition and mask the run uses, e.g. "velocity[1].condition". */
  condition: string
  condition_mask: string
  initial_noise: Nested
  velocity_per_step: Nested
  latents_after_step: Nested
  final_latents: Nested
}

export interface DitReference {
  condition_length: number
  llm_hidden: number
  caption_channels: number
  latent_shape: number[]
  connector: { condition: Nested; output: Nested }
  velocity: DitVelocityCase[]
  sampling: DitSamplingRun[]
}

export function readDitReference(): DitReference {
  return JSON.parse(readFileSync(`${DIT_REFERENCE_DIR}reference.json`, 'utf8')) as DitReference
}
