/**
 * makeFolder / makeFolderSync (proxy/core/make-folder.ts): `mkdir -p` that returns on every file
 * system, including /proc, where Node 20's recursive mkdir never returns.
 */
import { existsSync } from 'node:fs'
import { stat, writeFile } from 'node:fs/promises'
import { join, parse } from 'node:path'
import t from 'tap'
import { makeFolder, makeFolderSync } from '../../../proxy/core/make-folder.js'

// Linux: mkdir under /proc answers ENOENT although /proc exists.
const procfs = existsSync('/proc/self/stat')

for (const [name, make] of [
  ['makeFolderSync', async (folder: string, mode?: number) => makeFolderSync(folder, mode)],
  ['makeFolder', makeFolder]
] as const) {
  t.test(`${name}: makes a folder and its missing parents, each with the mode; leaves one that exists`, async (t) => {
    const root = t.testdir()
    const deep = join(root, 'a', 'b', 'c')
    await make(deep, 0o700)
    for (const folder of [join(root, 'a'), join(root, 'a', 'b'), deep]) {
      const made = await stat(folder)
      t.ok(made.isDirectory(), `${folder} is a folder`)
      t.equal(made.mode & 0o777, 0o700, `${folder} has the mode`)
    }
    await make(deep, 0o755)
    t.equal((await stat(deep)).mode & 0o777, 0o700, 'a folder that exists is left as it is')
    // mkdir of the root fails (EEXIST here, EISDIR on macOS), and the root is a folder: nothing to make.
    await t.resolves(make(parse(root).root), 'the root')
  })

  t.test(`${name}: a file in the way, or as a parent, is an error`, async (t) => {
    const root = t.testdir()
    await writeFile(join(root, 'file'), 'not a folder')
    await t.rejects(make(join(root, 'file')), { code: 'EEXIST' })
    await t.rejects(make(join(root, 'file', 'sub')), { code: 'ENOTDIR' })
  })

  t.test(`${name}: a folder mkdir cannot make although its parent exists (/proc) is an error at once, not a hang`, { skip: !procfs && 'no /proc here' }, async (t) => {
    await t.rejects(make('/proc/clb-proxy-make-folder-test'), { code: 'ENOENT' })
    await t.rejects(make('/proc/clb-proxy-make-folder-test/a/b'), { code: 'ENOENT' })
  })
}
