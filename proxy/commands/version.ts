/**
 * The package's version, for `clb-proxy --version` and the `User-Agent` that `clb-proxy check`
 * sends. It lives in its own module so that a subcommand can name the version without importing
 * the CLI that dispatches to it (an import cycle: issue 8).
 */
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

let cachedVersion: string | undefined

/**
 * The version in our package.json, found by walking up from this module's own file: that is
 * `../` from proxy/commands/version.ts, `../../` from dist/proxy/commands/version.js, and the same inside node_modules.
 */
export function readVersion (): string {
  if (cachedVersion !== undefined) return cachedVersion
  let directory = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const manifest = readPackageJson(join(directory, 'package.json'))
    if (manifest?.name === 'clb-proxy' && typeof manifest.version === 'string') {
      cachedVersion = manifest.version
      return cachedVersion
    }
    const parent = dirname(directory)
    if (parent === directory) throw new Error(`no clb-proxy package.json above ${fileURLToPath(import.meta.url)}`)
    directory = parent
  }
}

function readPackageJson (path: string): { name?: unknown; version?: unknown } | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as { name?: unknown; version?: unknown }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}
