'use strict'
/**
 * The package entry for require('clb-proxy') (the "require" condition of package.json "exports").
 * clb-proxy is an ES module package: dist/index.js is the entry, and its types are the only ones.
 *
 * Node.js 20.19 and later load an ES module with require() (process.features.require_module), so
 * require('clb-proxy') gives the same module as import. Older Node.js 20 releases, and any release
 * started with --no-experimental-require-module, cannot: they throw ERR_REQUIRE_ESM, which names
 * the file but not the import to write. So can a module loader of its own that runs this file on a
 * Node.js that could (Jest's runtime). This file keeps that code and says how to import instead.
 */
const HOW_TO_IMPORT =
  "clb-proxy is an ES module package: import { startClbProxy } from 'clb-proxy' in an ES module, " +
  "or const { startClbProxy } = await import('clb-proxy') from CommonJS"

try {
  module.exports = require('./dist/index.js')
} catch (error) {
  if (error === null || typeof error !== 'object' || (error.code !== 'ERR_REQUIRE_ESM' && error.code !== 'ERR_REQUIRE_ASYNC_MODULE')) throw error
  // Node.js itself can require() an ES module here: the require() that failed is another loader's.
  const nodeCanRequireEsm = process.features.require_module === true && error.code === 'ERR_REQUIRE_ESM'
  const esmOnly = new Error(
    nodeCanRequireEsm
      ? `${HOW_TO_IMPORT}. Node.js ${process.version} can require() it, but the module loader that ran this require() cannot ` +
        '(Jest\'s, for one: run Jest with NODE_OPTIONS=--experimental-vm-modules and import clb-proxy).'
      : `${HOW_TO_IMPORT}. require('clb-proxy') needs Node.js 20.19 or later without --no-experimental-require-module (this is ${process.version}).`,
    { cause: error }
  )
  esmOnly.code = 'ERR_REQUIRE_ESM'
  throw esmOnly
}
