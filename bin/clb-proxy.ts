#!/usr/bin/env -S node --max-semi-space-size=4
/**
 * V8's young generation is capped at 4 MiB per semi-space (the shebang above, package.json's start
 * script and the Docker entry point run the same flag): under a connection storm it otherwise grows
 * to 16 MiB per semi-space and stays resident. Measured by test/bin/memory-bounds.test.ts: 5,000
 * kept-alive idle clients peak at about 84 MiB instead of 104 MiB. 2 MiB saves no more memory and
 * costs more CPU in scavenges (GC was 13% of /small's profile with 2 MiB; bench/).
 *
 * The executable: everything happens in run() (proxy/commands/cli.ts); this file only hands it the
 * process's arguments, environment and streams, and sets the exit code in one place.
 */
import { run } from '../proxy/commands/cli.js'

const exitCode = await run(process.argv.slice(2), process.env, {
  stdout: process.stdout,
  stderr: process.stderr,
  // A getter: process.stdin is opened on first use, so only `analyze -` opens it.
  get stdin() { return process.stdin }
}).catch((error: unknown) => {
  // run() turns every expected failure into a message and an exit code; reaching here is a bug.
  process.stderr.write(
    `clb-proxy: internal error (a bug; please report it):\n${error instanceof Error ? error.stack ?? error.message : String(error)}\n`
  )
  return 1
})
process.exitCode = exitCode
