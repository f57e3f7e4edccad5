/** The repository's root, for tests that read its files (docs, package.json, dist/), wherever the test file sits. */
import { fileURLToPath } from 'node:url'

/** file: URL of the repository root, with a trailing slash: `new URL('docs/x.md', REPO_URL)`. */
export const REPO_URL = new URL('../../', import.meta.url)
/** The repository root as a path, with a trailing slash. */
export const REPO_ROOT = fileURLToPath(REPO_URL)
