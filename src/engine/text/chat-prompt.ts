/**
 * Turns chat messages into the prompt the model reads: the chat template from
 * tokenizer_config.json renders the conversation, then the text is encoded
 * and each image placeholder becomes an image piece.
 *
 *     … <|vision_start|> <|image_pad|> <|vision_end|> …
 *     └─ text, ends with ─┘ └─ image ─┘ └─ text, starts with ─┘
 *
 * Client text cannot produce special tokens (see `UserTextGuard`), so every
 * `<|image_pad|>` in the prompt was written by the template for an image part.
 */
import { Template } from '@huggingface/jinja'
import type { ChatMessage, ImageInput } from '../types.js'
import type { TextTokenizer } from './tokenizer.js'
import { UserTextGuard } from './user-text-guard.js'
import { KelixError } from '../../errors/kelix-error.js'

export type PromptPiece = { kind: 'text'; ids: number[] } | { kind: 'image'; image: ImageInput }

export interface RenderOptions {
  /** Ends the prompt with the opening of an assistant turn. */
  addGenerationPrompt: boolean
}

/** What the tokenizer must provide. */
export type PromptTokenizer = Pick<
  TextTokenizer,
  'specialIds' | 'specialTokens' | 'templateTokens' | 'splitSpecial' | 'encodeOrdinary'
>

type TemplatePart = { type: 'text'; text: string } | { type: 'image' }

/**
 * Renders `messages` with the chat template and encodes the result.
 * Adjacent text is merged into one piece; each image takes the place of
 * exactly one `<|image_pad|>`, in message order.
 *
 * @throws KelixError PROMPT_TEMPLATE_FAILED when the template does not parse or render
 * @throws KelixError PROMPT_IMAGE_MISMATCH when the prompt holds a different number of image pads than there are images
 */
export function renderPrompt(
  tokenizer: PromptTokenizer,
  templateSource: string,
  messages: readonly ChatMessage[],
  options: RenderOptions,
): PromptPiece[] {
  const guard = new UserTextGuard(tokenizer.specialTokens, [templateSource, ...messages.flatMap(messageTexts)])
  const images: ImageInput[] = []
  const templateMessages = messages.map((m) => ({
    role: m.role,
    content:
      typeof m.content === 'string'
        ? guard.protect(m.content)
        : m.content.map((part): TemplatePart => {
            if (part.type === 'text') return { type: 'text', text: guard.protect(part.text) }
            images.push(part.image)
            return { type: 'image' }
          }),
  }))
  const rendered = renderTemplate(templateSource, {
    ...tokenizer.templateTokens,
    messages: templateMessages,
    add_generation_prompt: options.addGenerationPrompt,
  })
  return toPieces(tokenizer, rendered, guard, images)
}

function messageTexts(message: ChatMessage): string[] {
  if (typeof message.content === 'string') return [message.content]
  return message.content.flatMap((part) => (part.type === 'text' ? [part.text] : []))
}

/** The last template compiled; a server uses one model, hence one template. */
let compiled: { source: string; template: Template } | undefined

function renderTemplate(source: string, context: Record<string, unknown>): string {
  try {
    if (compiled?.source !== source) compiled = { source, template: new Template(source) }
    return compiled.template.render(context)
  } catch (err) {
    throw new KelixError('invalid_prompt', (err as Error).message)
  }
}

function toPieces(
  tokenizer: PromptTokenizer,
  rendered: string,
  guard: UserTextGuard,
  images: readonly ImageInput[],
): PromptPiece[] {
  const imagePad = tokenizer.specialIds.image_pad
  const pieces: PromptPiece[] = []
  let text: number[] = []
  let pads = 0
  for (const segment of tokenizer.splitSpecial(rendered)) {
    if (typeof segment === 'string') {
      // A loop, not push(...ids): a long document would exceed the argument limit.
      for (const id of tokenizer.encodeOrdinary(guard.restore(segment))) text.push(id)
    } else if (segment !== imagePad) {
      text.push(segment)
    } else {
      const image = images[pads++]
      if (image === undefined) continue
      if (text.length > 0) pieces.push({ kind: 'text', ids: text })
      pieces.push({ kind: 'image', image })
      text = []
    }
  }
  if (pads !== images.length) {
    throw new KelixError(
      'invalid_prompt',
      `the chat template wrote ${pads} image placeholders for ${images.length} images`,
    )
  }
  if (text.length > 0) pieces.push({ kind: 'text', ids: text })
  return pieces
}
