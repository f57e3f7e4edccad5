/**
 * The default capture folder (proxy/observers/captures.ts, docs/captures.md): its name can be
 * guessed and it is in the shared temp dir, so it is per user and used only while it is a real
 * folder of this user's that no other user can write. The OS temp dir of this process is a test
 * folder made like /tmp (mode 1777), set before the modules that read it are imported.
 */
import { chmod, chown, mkdir, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'

const sharedTemp = t.testdir({ elsewhere: {} })
await chmod(sharedTemp, 0o1777)
process.env.TMPDIR = sharedTemp
const { CLB_DEFAULTS } = await import('../../../proxy/core/options.js')
const { subscribeCaptures } = await import('../../../proxy/observers/captures.js')
const { ClbProxyEvents } = await import('../../../proxy/core/events.js')
const { recordingLogger, rejectedRecord, writerOptions } = await import('../../helpers/capture-records.js')

const uid = process.getuid?.()
const defaultFolder = join(sharedTemp, uid === undefined ? 'clb-proxy-captures' : `clb-proxy-captures-${uid}`)
const FIRST_CAPTURE = '2026-11-25T08-30-40.212590Z-502-CL_NOT_INTEGER-1.capture'

function notUsed (problem: string, what = 'capture directory not used'): string {
  return `${what}: ${defaultFolder} (${problem}: no capture is written there; remove it or give --capture-dir); ` +
    'the proxy keeps serving, and this is reported once per kind of error until a capture is written again'
}

/** One rejected exchange through a capture writer on `captureDir`: what it logged, announced and listed. */
async function captureOnce (captureDir: string | null, beforeTheCapture: () => Promise<void> = async () => undefined):
Promise<{ lines: Array<[unknown, unknown]>, announced: string | null, listed: number }> {
  const { logger, lines } = recordingLogger()
  const events = new ClbProxyEvents()
  const captures = subscribeCaptures(events, writerOptions(captureDir, 5), logger)
  await beforeTheCapture()
  const record = rejectedRecord()
  const announced = captures.fileFor(record)
  events.emit('exchange', record)
  await captures.close()
  return { lines: lines.map((line) => [line.level, line.msg]), announced, listed: captures.list().length }
}

t.test('the default folder is per user, in the OS temp dir', async (t) => {
  t.equal(CLB_DEFAULTS.captureDir, defaultFolder)
})

t.test('a default folder that does not exist is made, this user\'s and mode 0700, and used', async (t) => {
  t.teardown(() => rm(defaultFolder, { recursive: true, force: true }))
  t.strictSame(await captureOnce(defaultFolder), { lines: [], announced: join(defaultFolder, FIRST_CAPTURE), listed: 1 })
  t.equal((await stat(defaultFolder)).mode & 0o777, 0o700)
  t.strictSame(await readdir(defaultFolder), [FIRST_CAPTURE])
})

t.test('a default folder other users can write is not used, and the files in it are not listed', async (t) => {
  t.teardown(() => rm(defaultFolder, { recursive: true, force: true }))
  await mkdir(defaultFolder)
  await chmod(defaultFolder, 0o777)
  const planted = '2026-11-25T08-30-38.212590Z-502-CL_NOT_INTEGER-1.capture'
  await writeFile(join(defaultFolder, planted), 'planted')
  t.strictSame(await captureOnce(defaultFolder), {
    lines: [[50, notUsed('writable by other users, mode 0777')], [40, `1 capture(s) were not written to ${defaultFolder}`]],
    announced: null,
    listed: 0
  })
  t.strictSame(await readdir(defaultFolder), [planted], 'nothing written, nothing removed')
})

t.test('a default folder that is a symbolic link is not used', async (t) => {
  t.teardown(() => rm(defaultFolder, { force: true }))
  await symlink(join(sharedTemp, 'elsewhere'), defaultFolder)
  t.strictSame((await captureOnce(defaultFolder)).lines[0], [50, notUsed('not a folder but a symbolic link or a file')])
  t.strictSame(await readdir(join(sharedTemp, 'elsewhere')), [], 'nothing written through the link')
})

t.test('a default folder of another user is not used', { skip: uid !== 0 && 'only root can give a folder to another uid' }, async (t) => {
  t.teardown(() => rm(defaultFolder, { recursive: true, force: true }))
  await mkdir(defaultFolder, { mode: 0o700 })
  await chown(defaultFolder, 4242, 4242)
  t.strictSame((await captureOnce(defaultFolder)).lines[0], [50, notUsed('owned by uid 4242, not by this user\'s uid 0')])
  t.strictSame(await readdir(defaultFolder), [])
})

t.test('a default folder made by somebody else after the proxy started is checked again before each write', async (t) => {
  t.teardown(() => rm(defaultFolder, { recursive: true, force: true }))
  const outcome = await captureOnce(defaultFolder, async () => {
    await mkdir(defaultFolder)
    await chmod(defaultFolder, 0o777)
  })
  t.strictSame(outcome.lines[0], [50, notUsed('writable by other users, mode 0777', 'capture not written')])
  t.strictSame(await readdir(defaultFolder), [])
})

t.test('a folder the user names is their choice: used even when others can write it', async (t) => {
  const named = join(sharedTemp, 'named')
  await mkdir(named)
  await chmod(named, 0o777)
  t.strictSame(await captureOnce(named), { lines: [], announced: join(named, FIRST_CAPTURE), listed: 1 })
})
