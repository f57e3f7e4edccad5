#!/usr/bin/env node
/**
 * The executable: everything happens in run() (proxy/cli.ts); this file only hands it the
 * process's arguments, environment and streams, and sets the exit code in one place.
 */
import { run } from '../proxy/cli.js'

const exitCode = await run(process.argv.slice(2), process.env, {
  stdout: process.stdout,
  stderr: process.stderr
}).catch((error: unknown) => {
  // run() turns every expected failure into a message and an exit code; reaching here is a bug.
  process.stderr.write(
    `clb-proxy: internal error (a bug; please report it):\n${error instanceof Error ? error.stack ?? error.message : String(error)}\n`
  )
  return 1
})
process.exitCode = exitCode
