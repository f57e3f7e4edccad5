/**
 * `mkdir -p`, without Node's recursive mkdir: when mkdir answers ENOENT for a folder whose parent
 * exists (as /proc does, and some network and FUSE file systems), Node 20's `recursive: true`
 * tries again forever, spinning a thread (sync: the main one; async: one of the pool's) and
 * never returning, so a proxy given such a folder hung at start or at shutdown. Here each folder
 * is made at most twice: once, and once more after its parents; a second failure is thrown.
 */
import fs from 'node:fs'
import { mkdir, stat } from 'node:fs/promises'
import path from 'node:path'

/** Makes `folder` and its missing parents (each with `mode`); a folder that exists is left as it is. */
export function makeFolderSync (folder: string, mode?: number): void {
  try {
    fs.mkdirSync(folder, { mode })
    return
  } catch (error) {
    if (existsAsFolderSync(folder, error)) return
    if (!needsParent(folder, error)) throw error
  }
  makeFolderSync(path.dirname(folder), mode)
  try {
    fs.mkdirSync(folder, { mode })
  } catch (error) {
    if (!existsAsFolderSync(folder, error)) throw error
  }
}

/** makeFolderSync, on the thread pool. */
export async function makeFolder (folder: string, mode?: number): Promise<void> {
  try {
    await mkdir(folder, { mode })
    return
  } catch (error) {
    if (await existsAsFolder(folder, error)) return
    if (!needsParent(folder, error)) throw error
  }
  await makeFolder(path.dirname(folder), mode)
  try {
    await mkdir(folder, { mode })
  } catch (error) {
    if (!(await existsAsFolder(folder, error))) throw error
  }
}

/** The mkdir failed because a parent is missing, and there is a parent to make (not the root). */
function needsParent (folder: string, error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === 'ENOENT' && path.dirname(folder) !== folder
}

/**
 * The mkdir failed, but `folder` is a folder: made meanwhile, or there already, whatever the error
 * said (EEXIST; EISDIR for / on macOS; EACCES or EROFS on some file systems), as Node's recursive
 * mkdir accepts. A file of that name is an error.
 */
function existsAsFolderSync (folder: string, error: unknown): boolean {
  if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false
  try {
    return fs.statSync(folder).isDirectory()
  } catch {
    return false
  }
}

async function existsAsFolder (folder: string, error: unknown): Promise<boolean> {
  if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false
  try {
    return (await stat(folder)).isDirectory()
  } catch {
    return false
  }
}
