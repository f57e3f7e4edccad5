/**
 * The dashboard in a real headless browser (Debian's chromium, driven by playwright-core): the page
 * loads, shows a 502 produced during the test coloured as ELB-generated, highlights its defect byte
 * in the capture, and shows an instance going OutOfService, all live (server-sent events). Also the
 * admin listener's guards: the Host check against DNS rebinding and the redaction of credentials in
 * captures. A screenshot is saved as a run artifact (.tap/artifacts/dashboard.png, git-ignored).
 */
import t from 'tap'
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import http from 'node:http'
import { chromium } from 'playwright-core'
import { pino } from 'pino'
import { startClbProxy } from '../../../proxy/library/clb-proxy.js'
import { startInstanceServer } from '../../helpers/instance-server.js'
import { REPO_ROOT } from '../../helpers/repo.js'
import { join } from 'node:path'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

/** A GET with a chosen Host header (fetch does not let a page set it). */
async function getWithHost (url: string, host: string): Promise<{ status: number, body: string }> {
  return await new Promise((resolve, reject) => {
    http.get(url, { headers: { host } }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => { body += chunk })
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }))
    }).on('error', reject)
  })
}

t.test('the dashboard shows a 502 with its defect byte highlighted and an instance going OutOfService, live', async (t) => {
  t.ok(existsSync(CHROMIUM), `chromium at ${CHROMIUM} (.ci/run installs Debian's chromium)`)
  const a = await startInstanceServer(t, 'a')
  const b = await startInstanceServer(t, 'b')
  const proxy = await startClbProxy({
    listen: '127.0.0.1:0',
    admin: '127.0.0.1:0',
    accessLog: null,
    captureDir: t.testdir(),
    healthCheck: 'HTTP:/health',
    healthIntervalSeconds: 5,
    healthTimeoutSeconds: 4,
    backends: [a.url, b.url]
  }, { logger: pino({ level: 'silent' }), timeScale: 0.06 })
  t.teardown(() => proxy.close())
  const [, bId] = proxy.instances().map((i) => i.InstanceId) as [string, string]
  await Promise.all(proxy.instances().map((i) => proxy.waitForInstanceState(i.InstanceId, 'InService')))
  const admin = proxy.adminUrl as string

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  const pageErrors: string[] = []
  page.on('pageerror', (error) => pageErrors.push(String(error)))
  // A resource that fails to load (a favicon the page did not declare: 404) is a console error too.
  page.on('console', (message) => { if (message.type() === 'error') pageErrors.push(message.text()) })
  await page.goto(`${admin}/`)
  await page.waitForSelector('#status:text("live")')
  await page.locator('#instances tbody tr.InService').nth(1).waitFor()
  t.equal(await page.locator('#instances tbody tr').count(), 2, 'both instances listed, in service')
  // Before any 5XX the chart is drawn all the same: thirty empty minutes, its scale, and what it means.
  await page.locator('#chart text.axis', { hasText: 'no 5XX in these 30 minutes' }).waitFor()
  t.strictSame(await page.locator('#chart rect').evaluateAll((bars) => bars.map((bar) => (bar as SVGElement).dataset.count)), Array.from({ length: 60 }, () => '0'),
    'before any 5XX: 30 minutes of ELB and Backend bars, all at 0')
  t.equal(await page.locator('#chart line.baseline').count(), 1)

  // A long token: the capture's dump wraps it over several lines, and it must be hidden all the same.
  const token = `Bearer ${'eyJhbGciOiJIUzI1NiJ9'.repeat(8)}.s3cret-token`
  const response = await fetch(`${proxy.url}/malformed`, { headers: { authorization: token, cookie: 'session=abc123' } })
  t.equal(response.status, 502)
  await response.arrayBuffer()
  const row = page.locator('#entries tbody tr.elb[data-status="502"]')
  await row.waitFor()
  t.match(await row.locator('td.line').textContent(), / 502 - 0 0 "GET http:\/\/127\.0\.0\.1:\d+\/malformed HTTP\/1\.1"/, 'the access-log line, coloured as ELB-generated')
  t.equal(await row.evaluate((element) => getComputedStyle(element.querySelector('td.status') as Element).backgroundColor), 'rgb(199, 37, 78)')
  t.equal(await row.locator('td.request').textContent(), 'GET /malformed', 'the method and target in a column of their own, however narrow the window')

  await page.locator('#captures li').first().click()
  const mark = page.locator('#capture-bytes mark.defect')
  await mark.waitFor()
  const [capture] = proxy.captures()
  const defect = capture?.defects.find((d) => d.code === 'CL_NOT_INTEGER')
  t.equal(await mark.getAttribute('data-offset'), String(defect?.offset), 'the highlighted byte is the defect\'s offset')
  t.equal(await mark.textContent(), 'a', 'the first byte of "abc"')
  t.match(await page.locator('#replay').textContent(), /^clb-proxy replay /, 'the replay command to copy')

  await page.locator('#chart rect.elb[data-count="1"]').waitFor()
  t.pass('the chart shows one ELB 5XX this minute')
  // Thirty consecutive minutes ending at the last one with a 5XX, empty ones drawn at 0, with the time range and scale written.
  const minutes = await page.locator('#chart rect.elb').evaluateAll((bars) => bars.map((bar) => Date.parse((bar as SVGElement).dataset.minute as string)))
  t.equal(minutes.length, 30)
  t.ok(minutes.every((minute, index) => index === 0 || minute - (minutes[index - 1] as number) === 60_000), 'one slot per minute, none skipped')
  const axis = await page.locator('#chart text.axis').allTextContents()
  const hhmm = (at: number | undefined): string => new Date(at as number).toISOString().slice(11, 16)
  t.strictSame(axis, ['max 1', hhmm(minutes[0]), `${hhmm(minutes[29])} UTC`], 'a 5XX drawn: no more "no 5XX" text')

  b.health = 'error'
  await page.locator(`#instances tbody tr.OutOfService[data-instance-id="${bId}"]`).waitFor()
  t.match(await page.locator(`#instances tbody tr[data-instance-id="${bId}"] td.state`).textContent(), 'OutOfService', 'the state change arrives live')

  await mkdir(join(REPO_ROOT, '.tap', 'artifacts'), { recursive: true })
  await page.screenshot({ path: join(REPO_ROOT, '.tap', 'artifacts', 'dashboard.png'), fullPage: true })
  t.strictSame(pageErrors, [], 'no script error on the page, no resource that failed to load')

  const name = capture?.file.split('/').at(-1) as string
  const shown = await (await fetch(`${admin}/captures/${encodeURIComponent(name)}`)).text()
  t.notOk(shown.includes('s3cret-token') || shown.includes('eyJhbGci') || shown.includes('abc123'), 'a capture shown by the admin listener hides the Authorization and Cookie values, however long')
  t.ok(shown.includes('*'.repeat(40)), 'masked with * of the same length')
  t.ok((await (await fetch(`${admin}/captures/${encodeURIComponent(name)}?redact=false`)).text()).includes('s3cret-token'), 'unless asked')
  const bytes = await (await fetch(`${admin}/captures/${encodeURIComponent(name)}/bytes`)).json() as { requestHead: string, responseBase64: string }
  t.notOk(bytes.requestHead.includes('s3cret-token'), 'the JSON view is masked too')
  t.match(bytes.requestHead, /\r\ncookie: \*{14}\r\n/i)

  const port = new URL(admin).port
  t.equal((await getWithHost(`${admin}/instances`, `localhost:${port}`)).status, 200)
  const rebound = await getWithHost(`${admin}/instances`, `evil.example:${port}`)
  t.equal(rebound.status, 421, 'a Host that is not this listener is refused (DNS rebinding)')
  t.match(rebound.body, /DNS rebinding/)
  t.equal((await getWithHost(`${admin}/`, `127.0.0.1:${Number(port) + 1}`)).status, 421, 'the port must be its own too')
})
