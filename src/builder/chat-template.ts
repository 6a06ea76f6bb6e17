/**
 * The Qwen2-VL ChatML template, as tokenizer_config.json carries it. An image
 * part becomes `<|vision_start|><|image_pad|><|vision_end|>`; the engine then
 * expands the single pad into the image's rows and blocks.
 */
export const CHAT_TEMPLATE = [
  "{%- set image_count = namespace(value=0) -%}",
  "{%- for message in messages -%}",
  "{%- if loop.first and message['role'] != 'system' -%}",
  "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n",
  "{%- endif -%}",
  "<|im_start|>{{ message['role'] }}\n",
  "{%- if message['content'] is string -%}",
  "{{ message['content'] }}",
  "{%- else -%}",
  "{%- for content in message['content'] -%}",
  "{%- if content['type'] == 'image' or content['type'] == 'image_url' -%}",
  "{%- set image_count.value = image_count.value + 1 -%}",
  "<|vision_start|><|image_pad|><|vision_end|>",
  "{%- elif content['type'] == 'text' -%}",
  "{{ content['text'] }}",
  "{%- endif -%}",
  "{%- endfor -%}",
  "{%- endif -%}",
  "<|im_end|>\n",
  "{%- endfor -%}",
  "{%- if add_generation_prompt -%}",
  "<|im_start|>assistant\n",
  "{%- endif -%}",
].join('')
