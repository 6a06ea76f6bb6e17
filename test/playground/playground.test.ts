/**
 * The playground at `/` in a real browser: Debian's Chromium, headless, driven
 * by playwright-core (nothing downloaded). It streams a chat answer (the same
 * text the API gives for the same request), takes images by file, paste and
 * drop, shows an image's partial previews before the image, and asks for an
 * API key when the server wants one, keeping it in the tab's session only.
 * Skips, saying why, where Chromium is not installed.
 */
import { existsSync } from 'node:fs'
import t from 'tap'
import { chromium, type Browser, type Page } from 'playwright-core'
import { patternPng } from '../helpers/images.js'
import { MODEL, serve, tinyEngine } from '../routes/serve.js'

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p))
if (CHROMIUM === undefined) t.plan(0, 'chromium is not installed (apt-get install chromium)')
else {
  const engine = await tinyEngine(t)
  const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] })
  t.teardown(() => browser.close())
  const png = await patternPng(40, 40)

  /** The page in its own browser context; `done` closes it, which each test does before its server closes (an open connection would hold that close). */
  const open = async (base: string): Promise<Page> => {
    const page = await (await browser.newContext()).newPage()
    await page.goto(`${base}/`)
    return page
  }
  const done = (page: Page) => page.context().close()
  const ask = async (page: Page, text: string) => {
    await page.fill('[data-testid=max-tokens]', '8')
    await page.fill('[data-testid=temperature]', '0')
    await page.fill('[data-testid=prompt]', text)
    await page.click('[data-testid=send]')
    const answer = page.locator('[data-testid=assistant]').last()
    await answer.locator('[data-testid=stats]').waitFor()
    return answer
  }

  t.test('a chat answer streams in, as the API gives it, with usage, TTFT and tokens/s', async (t) => {
    const { base, openai } = await serve(t, engine)
    const page = await open(base)
    await page.locator('[data-testid=model]', { hasText: MODEL }).waitFor()
    const answer = await ask(page, 'Hello')
    const api = await openai.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello' }] }],
      max_tokens: 8,
      temperature: 0,
      top_p: 1,
    })
    const stats = answer.locator('[data-testid=stats]')
    t.equal(await answer.locator('span').textContent(), api.choices[0]?.message.content)
    t.equal(await stats.getAttribute('data-prompt-tokens'), String(api.usage?.prompt_tokens))
    t.match(await stats.textContent(), /^\d+ prompt \+ 8 completion tokens · TTFT \d+ ms · [\d.]+ tokens\/s$/)
    await done(page)
  })

  t.test('images by file, paste and drop go with the message', async (t) => {
    const { base } = await serve(t, engine)
    const page = await open(base)
    const textOnly = Number(
      await (await ask(page, 'What is it?')).locator('[data-testid=stats]').getAttribute('data-prompt-tokens'),
    )
    await page
      .locator('[data-testid=file]')
      .setInputFiles({ name: 'a.png', mimeType: 'image/png', buffer: Buffer.from(png) })
    // In the page (a string: the project's TypeScript has no DOM types): a paste and a drop carrying the PNG.
    await page.evaluate(`(() => {
      const bytes = new Uint8Array(${JSON.stringify([...png])})
      const files = () => { const d = new DataTransfer(); d.items.add(new File([bytes], 'b.png', { type: 'image/png' })); return d }
      document.querySelector('[data-testid=prompt]').dispatchEvent(new ClipboardEvent('paste', { clipboardData: files(), bubbles: true }))
      document.querySelector('[data-testid=chat-form]').dispatchEvent(new DragEvent('drop', { dataTransfer: files(), bubbles: true, cancelable: true }))
    })()`)
    await page.locator('[data-testid=attachment]').nth(2).waitFor()
    const answer = await ask(page, 'What is it?')
    t.equal(await page.locator('[data-testid=user]').last().locator('img').count(), 3, 'three images in the message')
    const withImages = Number(await answer.locator('[data-testid=stats]').getAttribute('data-prompt-tokens'))
    t.ok(
      withImages > textOnly + 3,
      `${withImages} prompt tokens with three images, ${textOnly} for the text (and the first turn) alone`,
    )
    await done(page)
  })

  t.test('image generation shows partial previews, then the image', async (t) => {
    const { base } = await serve(t, engine)
    const page = await open(base)
    // Every kind the image element shows, in order.
    await page.evaluate(`(() => {
      const seen = (window.seen = [])
      new MutationObserver(() => {
        const kind = document.querySelector('[data-testid=image]')?.getAttribute('data-kind')
        if (kind && seen.at(-1) !== kind) seen.push(kind)
      }).observe(document.querySelector('[data-testid=images]'), { subtree: true, childList: true, attributes: true })
    })()`)
    await page.fill('[data-testid=seed]', '7')
    await page.click('[data-testid=generate]')
    await page.locator('[data-testid=image][data-kind=final]').waitFor()
    t.same(await page.evaluate('window.seen'), ['partial', 'final'])
    t.equal(await page.locator('[data-testid=image]').getAttribute('data-partials'), '2')
    t.equal(
      await page.evaluate("document.querySelector('[data-testid=image]').naturalWidth"),
      engine.imageCapabilities?.size,
      'the image decodes at the model size',
    )
    t.match(await page.locator('[data-testid=image-status]').textContent(), /^done in [\d.]+ s$/)
    await done(page)
  })

  t.test('with API keys: the page asks for one, refuses a wrong one, keeps the right one in the session', async (t) => {
    const { base } = await serve(t, engine, { config: { apiKeys: ['sk-play'] } })
    const page = await open(base)
    const dialog = page.locator('[data-testid=key-dialog]')
    await dialog.waitFor({ state: 'visible' })
    await page.fill('[data-testid=key-input]', 'sk-wrong')
    await page.click('[data-testid=key-save]')
    await page.locator('[data-testid=key-error]', { hasText: 'That key was not accepted.' }).waitFor()
    t.ok(await dialog.isVisible(), 'asked again')
    await page.fill('[data-testid=key-input]', 'sk-play')
    await page.click('[data-testid=key-save]')
    await page.locator('[data-testid=model]', { hasText: MODEL }).waitFor()
    t.match(await (await ask(page, 'Hi')).locator('[data-testid=stats]').textContent(), /8 completion tokens/)
    t.same(await page.evaluate("[sessionStorage.getItem('kelix-api-key'), localStorage.length]"), ['sk-play', 0])
    await done(page)
  })
}
