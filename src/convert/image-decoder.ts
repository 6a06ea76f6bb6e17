/**
 * The image decoder of a converted model: the Kelix-DiT (SANA, `SanaConfig`)
 * and the DC-AE decoder (diffusers `AutoencoderDC`), each from its own
 * checkpoint directory, checked against each other and against the LLM:
 *
 *   DiT  config.json + shards ──► dit.onnx           (condition length = rows of the null caption)
 *   VAE  config.json + shards ──► vae_decoder.onnx   (image side = latent side × its upsampling)
 *   the LLM's hidden size = the DiT's connector input; the VAE's latent channels = the DiT's;
 *   the grid's span (row markers included) ≤ the condition length
 *
 * The sampler's settings (steps, shift, guidance) are in no checkpoint: Kelix's
 * demo values are the defaults, options otherwise.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { buildDcAeDecoder } from '../builder/dc-ae-decoder.js'
import { GraphBuilder, type BuiltGraph } from '../builder/graph.js'
import { buildSanaDit } from '../builder/sana-dit.js'
import { MODEL_FILES } from '../engine/graph-signatures.js'
import type { ImageGenerationConfig, KelixConfig } from '../engine/model-config.js'
import type { TokenizerData } from '../engine/model.js'
import { Checkpoint, readCheckpointFile } from './checkpoint.js'
import { CheckpointTensors } from './checkpoint-weights.js'
import { parseDcAeConfig, type DcAeConfig } from './dc-ae-config.js'
import { chooseGrid, spanLengths } from './image-grid.js'
import { parseSanaConfig, sanaConditionLength, type SanaDitConfig } from './sana-config.js'
import { familyOf, unusedFamilies, type UnusedFamily } from './unused-keys.js'
import { KelixError } from '../errors/kelix-error.js'

/** Where a release that bundles its image decoder keeps the two checkpoints, inside the LLM's directory. */
export const BUNDLED_DIRS = { dit: 'dit', vae: 'vae' } as const

/** Kelix's sampler (demo/kelix_utils.py): 50 Euler steps, shift 3.0, guidance 1.0. */
export const KELIX_SAMPLER = { steps: 50, shift: 3, guidance: 1 } as const

export interface ImageDecoderDirs {
  dit: string
  vae: string
}

/** The deployment's choices for image generation; each is checked against the checkpoints. */
export interface ImageGenerationOptions {
  /** Image positions per side the LLM writes (default: Kelix's 18, or the largest that fits the condition). */
  grid?: number
  steps?: number
  shift?: number
  guidance?: number
}

/** The two checkpoints given, or found in `from`; both or neither (a chat-only export). */
export function imageDecoderDirs(
  from: string,
  given: { dit?: string | undefined; vae?: string | undefined },
): ImageDecoderDirs | undefined {
  const bundled = (name: string) => (existsSync(join(from, name, 'config.json')) ? join(from, name) : undefined)
  const dit = given.dit ?? bundled(BUNDLED_DIRS.dit)
  const vae = given.vae ?? bundled(BUNDLED_DIRS.vae)
  if (dit === undefined && vae === undefined) return undefined
  if (dit === undefined || vae === undefined) {
    const [have, missing] = dit === undefined ? ['VAE', 'DiT (--dit)'] : ['DiT', 'VAE (--vae)']
    throw new KelixError(
      'CONVERT_OPTION_INVALID',
      `a ${have} checkpoint is given but no ${missing}: image generation needs both`,
    )
  }
  return { dit, vae }
}

export interface OpenedImageDecoder {
  config: ImageGenerationConfig
  graphs: Record<string, BuiltGraph>
  /** Checkpoint tensors neither graph reads, their families prefixed `dit: ` / `vae: `. */
  unused: UnusedFamily[]
  close(): Promise<void>
}

/** Opens both checkpoints, checks them, and builds both graphs (every key's shape checked here, nothing written). */
export async function openImageDecoder(
  dirs: ImageDecoderDirs,
  served: KelixConfig,
  tokenizer: TokenizerData,
  options: ImageGenerationOptions = {},
): Promise<OpenedImageDecoder> {
  const ditConfigFile = join(dirs.dit, 'config.json')
  const vaeConfigFile = join(dirs.vae, 'config.json')
  const dit = parseSanaConfig(await readCheckpointFile(dirs.dit, 'config.json'), ditConfigFile)
  const vae = parseDcAeConfig(await readCheckpointFile(dirs.vae, 'config.json'), vaeConfigFile)
  checkFit(dit, vae, served, ditConfigFile, vaeConfigFile)
  const ditCheckpoint = await Checkpoint.open(dirs.dit)
  const vaeCheckpoint = await Checkpoint.open(dirs.vae).catch(async (err: unknown) => {
    await ditCheckpoint.close()
    throw err
  })
  const close = async () => {
    await ditCheckpoint.close()
    await vaeCheckpoint.close()
  }
  try {
    const conditionLength = sanaConditionLength(ditCheckpoint)
    const grid = chooseGrid(spanLengths(served, tokenizer), conditionLength, options.grid)
    const ditWeights = new CheckpointTensors(ditCheckpoint)
    const vaeWeights = new CheckpointTensors(vaeCheckpoint)
    const graphs = {
      [MODEL_FILES.dit]: buildSanaDit(
        { g: new GraphBuilder('kelix_dit'), w: ditWeights },
        { config: dit, conditionLength },
      ),
      [MODEL_FILES.vaeDecoder]: buildDcAeDecoder(
        { g: new GraphBuilder('kelix_vae_decoder'), w: vaeWeights },
        vae,
        dit.inputSize,
      ),
    }
    const unused = [
      ...prefixed(
        'dit',
        unusedFamilies(
          ditCheckpoint.keys().filter((k) => !ditWeights.used.has(k)),
          (k) => ditCheckpoint.parameterCount(k),
        ),
      ),
      // The encoder is one family: the summary names what is left out, not its 100 layers.
      ...prefixed(
        'vae',
        unusedFamilies(
          vaeCheckpoint.keys().filter((k) => !vaeWeights.used.has(k)),
          (k) => vaeCheckpoint.parameterCount(k),
          (k) => (k.startsWith('encoder.') ? 'encoder.*' : familyOf(k)),
        ),
      ),
    ]
    const config: ImageGenerationConfig = {
      grid,
      condition_length: conditionLength,
      latent_channels: dit.inChannels,
      latent_size: dit.inputSize,
      image_size: dit.inputSize * vae.upsamplingFactor,
      steps: options.steps ?? KELIX_SAMPLER.steps,
      shift: options.shift ?? KELIX_SAMPLER.shift,
      guidance: options.guidance ?? KELIX_SAMPLER.guidance,
      dit: {
        hidden_size: dit.hidden,
        num_layers: dit.depth,
        num_heads: dit.crossHeads,
        patch_size: dit.patchSize,
        intermediate_size: dit.ffnInner,
      },
    }
    return { config, graphs, unused, close }
  } catch (err) {
    await close()
    throw err
  }
}

/** The three checkpoints must describe one pipeline. */
function checkFit(dit: SanaDitConfig, vae: DcAeConfig, served: KelixConfig, ditFile: string, vaeFile: string): void {
  const conditionWidth = dit.connectorChannels ?? dit.captionChannels
  const field = dit.connectorChannels === null ? 'caption_channels (no connector)' : 'connector_channels'
  if (conditionWidth !== served.llm.hidden_size) {
    throw new KelixError(
      'CHECKPOINT_CONFIG_INVALID',
      `${field} is ${conditionWidth}, but the LLM's hidden size (qwen_config.embed_dim) is ${served.llm.hidden_size}: the DiT is conditioned on the LLM's hidden states`,
      { file: ditFile },
    )
  }
  if (vae.latentChannels !== dit.inChannels) {
    throw new KelixError(
      'CHECKPOINT_CONFIG_INVALID',
      `latent_channels is ${vae.latentChannels}, but the DiT's in_channels is ${dit.inChannels}`,
      { file: vaeFile },
    )
  }
  if (vae.upsamplingFactor !== dit.vaeDownsampleRate) {
    throw new KelixError(
      'CHECKPOINT_CONFIG_INVALID',
      `the decoder upsamples ${vae.upsamplingFactor}×, but the DiT's vae_downsample_rate is ${dit.vaeDownsampleRate}`,
      { file: vaeFile },
    )
  }
}

function prefixed(part: string, families: UnusedFamily[]): UnusedFamily[] {
  return families.map((f) => ({ ...f, family: `${part}: ${f.family}` }))
}
