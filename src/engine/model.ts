/**
 * Opens a Kelix model directory: reads config.json and the tokenizer files,
 * opens the five ONNX sessions, and checks every graph against the format
 * before anything runs. Each failure names the file and what is wrong.
 */
import { existsSync, lstatSync, statSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import ort from 'onnxruntime-node'
import { chooseProviders, type ExecutionProvider, type ProviderChoice } from './providers.js'
import { DeviceKvOps } from './kv/device-kv-ops.js'
import {
  blockDecoderSignature,
  decoderSignature,
  kvName,
  ditSignature,
  MODEL_FILES,
  signatureProblems,
  vaeDecoderSignature,
  visualTokenizerSignature,
  type GraphSignature,
} from './graph-signatures.js'
import { generatesImages, parseConfig, type ImageGenerationKelixConfig, type KelixConfig } from './model-config.js'
import { KelixError } from '../errors/kelix-error.js'

export type { ExecutionProvider } from './providers.js'

export interface LoadOptions {
  /** Execution providers in order of preference. Default `['cpu']`. */
  executionProviders?: ExecutionProvider[]
  /** Threads for one operator; default: ONNX Runtime's choice (one per core). */
  intraOpThreads?: number
  /**
   * Let ONNX Runtime's worker threads spin while waiting for work. Faster for a
   * process that does nothing else; on a small machine it takes CPU from the
   * HTTP thread. Default false.
   */
  allowSpinning?: boolean
}

/** What turns a generated image span into pixels. */
export interface ImageDecoder {
  config: ImageGenerationKelixConfig
  /** Flow-matching DiT: velocity of the image latents, conditioned on the LLM's hidden states. */
  dit: ort.InferenceSession
  /** Latents → image in [−1, 1]. */
  vaeDecoder: ort.InferenceSession
}

export interface TokenizerData {
  tokenizerJson: Record<string, unknown>
  tokenizerConfig: Record<string, unknown>
}

export interface KelixModel {
  dir: string
  config: KelixConfig
  tokenizer: TokenizerData
  visualTokenizer: ort.InferenceSession
  decoder: ort.InferenceSession
  blockDecoder: ort.InferenceSession
  /** The image decoder; undefined for a chat-only export (no `image_generation` in config.json). */
  imageDecoder: ImageDecoder | undefined
  /** The execution providers the sessions run on, and those skipped because they could not be loaded. */
  providers: ProviderChoice
  /** True when decoder.onnx declares `present_delta.*` (only the new positions' keys and values). */
  decoderHasDelta: boolean
  /** True when block_decoder.onnx declares `vocab_part` (logits for one vocabulary part per call). */
  blockDecoderHasParts: boolean
  /**
   * The cache operations on the GPU when the cache stays there: the provider
   * in use is WebGPU and decoder.onnx leaves its `present_delta.*` on the
   * device. Undefined when the cache lives in host memory.
   */
  deviceKv: DeviceKvOps | undefined
  /** Releases the sessions; idempotent. */
  dispose(): Promise<void>
}

export async function loadModel(dir: string, options: LoadOptions = {}): Promise<KelixModel> {
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new KelixError('MODEL_DIR_MISSING', `${dir} is not a directory`)
  const configPath = join(dir, MODEL_FILES.config)
  if (!existsSync(configPath))
    throw new KelixError('MODEL_FILE_MISSING', `required by the model format but not found in ${dir}`, {
      file: MODEL_FILES.config,
    })
  const config = parseConfig(await readFile(configPath, 'utf8'))
  // The image decoder's files are required exactly when config.json describes image generation.
  const imageFiles: string[] = [MODEL_FILES.dit, MODEL_FILES.vaeDecoder]
  for (const file of Object.values(MODEL_FILES)) {
    if (!generatesImages(config) && imageFiles.includes(file)) continue
    const why = imageFiles.includes(file) ? 'required by config.json image_generation' : 'required by the model format'
    if (!existsSync(join(dir, file)))
      throw new KelixError('MODEL_FILE_MISSING', `${why} but not found in ${dir}`, { file: file })
  }
  const tokenizer = await readTokenizer(dir, config)

  const providers = await chooseProviders(options.executionProviders ?? ['cpu'])
  const sessionOptions = modelSessionOptions({ ...options, executionProviders: providers.inUse })
  // The embedding table the LLM graphs share is external data too.
  refuseLinked(join(dir, MODEL_FILES.embeddings), MODEL_FILES.embeddings)
  const opened: Array<{ release(): Promise<void> }> = []
  /** Opens `file` and checks it against its signature, which may depend on the inputs the graph declares. */
  const open = async (
    file: string,
    signatureOf: (inputNames: readonly string[]) => GraphSignature,
    options = sessionOptions,
  ) => {
    const session = await openSession(join(dir, file), file, options)
    opened.push(session)
    const problems = signatureProblems(signatureOf(session.inputNames), {
      inputs: session.inputMetadata.map(declared),
      outputs: session.outputMetadata.map(declared),
    })
    if (problems.length > 0) throw new KelixError('MODEL_GRAPH_MISMATCH', problems.join('; '), { file: file })
    return session
  }
  try {
    const visualTokenizer = await open(MODEL_FILES.visualTokenizer, () => visualTokenizerSignature(config))
    const onDevice = providers.inUse[0] === 'webgpu'
    const decoder = onDevice
      ? await openDecoderOnDevice(
          config,
          (options) => open(MODEL_FILES.decoder, () => decoderSignature(config), options),
          sessionOptions,
        )
      : await open(MODEL_FILES.decoder, () => decoderSignature(config))
    const decoderHasDelta = decoder.outputNames.includes('present_delta.0.key')
    const deviceKv =
      onDevice && decoderHasDelta
        ? await DeviceKvOps.create(
            {
              tensors: config.llm.num_layers * 2,
              heads: config.llm.num_key_value_heads,
              dim: config.llm.head_dim,
              dtype: config.llm.kv_dtype,
            },
            providers.inUse[0] as ExecutionProvider,
          )
        : undefined
    if (deviceKv !== undefined) opened.push(deviceKv)
    const blockDecoder = await open(MODEL_FILES.blockDecoder, (inputs) =>
      blockDecoderSignature(config, inputs.includes('vocab_part')),
    )
    const imageDecoder = generatesImages(config)
      ? {
          config,
          dit: await open(MODEL_FILES.dit, () => ditSignature(config)),
          vaeDecoder: await open(MODEL_FILES.vaeDecoder, () => vaeDecoderSignature(config)),
        }
      : undefined
    let disposed = false
    return {
      dir,
      config,
      tokenizer,
      visualTokenizer,
      decoder,
      blockDecoder,
      imageDecoder,
      providers,
      decoderHasDelta,
      blockDecoderHasParts: blockDecoder.inputNames.includes('vocab_part'),
      deviceKv,
      async dispose() {
        if (disposed) return
        disposed = true
        await Promise.all(opened.map((s) => s.release()))
      },
    }
  } catch (err) {
    await Promise.all(opened.map((s) => s.release()))
    throw err
  }
}

/**
 * decoder.onnx on a GPU, its `present_delta.*` outputs left on the device (the
 * hidden states come back to the host). A decoder of the older form (whole
 * `present.*` outputs) has none: it is opened with every output on the host.
 */
async function openDecoderOnDevice(
  config: KelixConfig,
  open: (options: ort.InferenceSession.SessionOptions) => Promise<ort.InferenceSession>,
  sessionOptions: ort.InferenceSession.SessionOptions,
): Promise<ort.InferenceSession> {
  const preferredOutputLocation: Record<string, 'gpu-buffer'> = {}
  for (let i = 0; i < config.llm.num_layers; i++)
    for (const part of ['key', 'value'] as const) preferredOutputLocation[kvName('delta', i, part)] = 'gpu-buffer'
  try {
    return await open({ ...sessionOptions, preferredOutputLocation })
  } catch (err) {
    if (!(err instanceof KelixError && /is not a valid output name/.test(err.message))) throw err
    return open(sessionOptions)
  }
}

/** The options every graph of a model is opened with (the benchmark opens lone graphs the same way). */
export function modelSessionOptions(options: LoadOptions = {}): ort.InferenceSession.SessionOptions {
  const providers = options.executionProviders ?? ['cpu']
  return {
    executionProviders: providers,
    graphOptimizationLevel: 'all',
    // A GPU provider warns at every load that shape operators run on the CPU, as intended.
    ...(providers[0] === 'cpu' ? {} : { logSeverityLevel: 3 as const }),
    extra: {
      session: {
        intra_op: { allow_spinning: options.allowSpinning === true ? '1' : '0' },
        inter_op: { allow_spinning: '0' },
      },
    },
    ...(options.intraOpThreads === undefined ? {} : { intraOpNumThreads: options.intraOpThreads }),
  }
}

async function openSession(
  path: string,
  file: string,
  options: ort.InferenceSession.SessionOptions,
): Promise<ort.InferenceSession> {
  refuseLinked(`${path}.data`, file)
  try {
    return await ort.InferenceSession.create(path, options)
  } catch (err) {
    throw new KelixError('MODEL_GRAPH_INVALID', `ONNX Runtime could not load it: ${(err as Error).message}`, {
      file: file,
    })
  }
}

/** ONNX Runtime refuses external data reached through a link (it suspects a link attack); say so plainly. */
function refuseLinked(data: string, file: string): void {
  const link = existsSync(data) ? lstatSync(data) : undefined
  if (link !== undefined && (link.isSymbolicLink() || link.nlink > 1)) {
    const kind = link.isSymbolicLink() ? 'a symbolic link' : `a file with ${link.nlink} hard links`
    throw new KelixError(
      'MODEL_GRAPH_INVALID',
      `its external data ${basename(data)} is ${kind}; ONNX Runtime reads external data only from a regular file with one link: copy it into the model directory`,
      { file: file },
    )
  }
}

function declared(meta: ort.InferenceSession.ValueMetadata) {
  if (!meta.isTensor) return { name: meta.name, type: 'non-tensor', shape: [] }
  return { name: meta.name, type: meta.type, shape: meta.shape }
}

/** The tokenizer must give every special token the id config.json gives it. */
async function readTokenizer(dir: string, config: KelixConfig): Promise<TokenizerData> {
  const readJson = async (file: string) => {
    try {
      return JSON.parse(await readFile(join(dir, file), 'utf8')) as Record<string, unknown>
    } catch (err) {
      throw new KelixError('MODEL_TOKENIZER_MISMATCH', `not valid JSON (${(err as Error).message})`, { file: file })
    }
  }
  const tokenizerJson = await readJson(MODEL_FILES.tokenizer)
  const tokenizerConfig = await readJson(MODEL_FILES.tokenizerConfig)
  const added = new Set((tokenizerJson.added_tokens as Array<{ id: number }> | undefined)?.map((t) => t.id) ?? [])
  for (const [name, id] of Object.entries(config.special_tokens)) {
    if (!added.has(id))
      throw new KelixError(
        'MODEL_TOKENIZER_MISMATCH',
        `config.json gives special_tokens.${name} id ${id}, but no added token has that id`,
        { file: MODEL_FILES.tokenizer },
      )
  }
  if (typeof tokenizerConfig.chat_template !== 'string') {
    throw new KelixError('MODEL_TOKENIZER_MISMATCH', 'chat_template is missing', { file: MODEL_FILES.tokenizerConfig })
  }
  return { tokenizerJson, tokenizerConfig }
}
