/**
 * Helpers for running aws/http-desync-guardian's corpus (test/helpers/desync-guardian.ts) through a
 * live proxy (test/proxy/data-path/desync-corpus-live.test.ts).
 *
 * 1. The exception lists of the pure-level corpus tests, read from their source (they are not
 *    exported, and importing a test file would run its tests): EXPECTED_DIFFERENCES of
 *    test/validators/desync-classifier.test.ts (where our classifier's tier/reason differs from the
 *    corpus's, with why), and SKIPPED and KNOWN_DIFFERENCES of
 *    test/validators/desync-guardian-corpus.test.ts (the cases that cannot exist on a socket, and
 *    the cases where our request parser's verdict differs from "Severe <=> 400", with why). The
 *    live test reuses them as they stand, so a list cannot drift between the two levels. The
 *    source is read with the TypeScript compiler's parser; only string literals, templates,
 *    `+` and references to top-level `const` strings are evaluated (the forms those lists use).
 * 2. One request sent to a live proxy fixture, whole or in given pieces (each piece written only
 *    after the proxy has read every byte before it, so the pieces are separate reads), and what
 *    happened: the client's bytes, whether the proxy closed, the exchange record, and the bytes
 *    and requests the raw backend received meanwhile.
 */
import { readFileSync } from 'node:fs'
import ts from 'typescript'
import type { ExchangeRecord } from '../../proxy/core/events.js'
import { CLB_DEFAULTS } from '../../proxy/core/options.js'
import { RequestParser } from '../../validators/request-parser.js'
import type { RequestTier } from './desync-guardian.js'
import type { ProxyFixture } from './proxy-fixture.js'
import type { ReceivedRequest } from './raw-backend.js'
import { REPO_URL } from './repo.js'

// --- 1. The exception lists of the pure-level tests ---

type Value = string | { readonly [key: string]: Value }

/** Evaluates the constant expressions the lists are written with; anything else is an error. */
function evaluator (file: ts.SourceFile, where: string): (node: ts.Expression) => Value {
  const constants = new Map<string, ts.Expression>()
  for (const statement of file.statements) {
    if (!ts.isVariableStatement(statement)) continue
    for (const declaration of statement.declarationList.declarations) {
      if (ts.isIdentifier(declaration.name) && declaration.initializer !== undefined) constants.set(declaration.name.text, declaration.initializer)
    }
  }
  const evaluate = (node: ts.Expression): Value => {
    if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) return node.text
    if (ts.isParenthesizedExpression(node)) return evaluate(node.expression)
    if (ts.isAsExpression(node) || ts.isSatisfiesExpression(node)) return evaluate(node.expression)
    if (ts.isTemplateExpression(node)) {
      return node.head.text + node.templateSpans.map((span) => `${text(evaluate(span.expression))}${span.literal.text}`).join('')
    }
    if (ts.isBinaryExpression(node) && node.operatorToken.kind === ts.SyntaxKind.PlusToken) return text(evaluate(node.left)) + text(evaluate(node.right))
    if (ts.isIdentifier(node)) {
      const initializer = constants.get(node.text)
      if (initializer === undefined) throw new Error(`${where}: ${node.text} is not a top-level constant`)
      return evaluate(initializer)
    }
    if (ts.isObjectLiteralExpression(node)) {
      const object: Record<string, Value> = {}
      for (const property of node.properties) {
        if (!ts.isPropertyAssignment(property)) throw new Error(`${where}: unsupported property ${property.getText(file)}`)
        const name = property.name
        if (!ts.isStringLiteral(name) && !ts.isIdentifier(name)) throw new Error(`${where}: unsupported key ${name.getText(file)}`)
        object[name.text] = evaluate(property.initializer)
      }
      return object
    }
    throw new Error(`${where}: cannot evaluate ${node.getText(file)}`)
  }
  const text = (value: Value): string => {
    if (typeof value !== 'string') throw new Error(`${where}: expected a string`)
    return value
  }
  return evaluate
}

/** The top-level `const name = { … }` of a test file, evaluated. */
function readList (relativePath: string, name: string): Record<string, Value> {
  const source = readFileSync(new URL(relativePath, REPO_URL), 'utf8')
  const file = ts.createSourceFile(relativePath, source, ts.ScriptTarget.ES2022, true)
  const where = `${relativePath} ${name}`
  for (const statement of file.statements) {
    if (!ts.isVariableStatement(statement)) continue
    for (const declaration of statement.declarationList.declarations) {
      if (!ts.isIdentifier(declaration.name) || declaration.name.text !== name || declaration.initializer === undefined) continue
      const value = evaluator(file, where)(declaration.initializer)
      if (typeof value === 'string') throw new Error(`${where} is not an object`)
      return value as Record<string, Value>
    }
  }
  throw new Error(`${where}: not found`)
}

function field (value: Value, key: string, where: string): string {
  const found = typeof value === 'string' ? undefined : value[key]
  if (typeof found !== 'string') throw new Error(`${where}: no string ${key}`)
  return found
}

export const CLASSIFIER_TEST = 'test/validators/desync-classifier.test.ts'
export const CORPUS_TEST = 'test/validators/desync-guardian-corpus.test.ts'

/** Where our classifier's tier/reason for the raw bytes differs from the corpus's (desync-classifier.test.ts EXPECTED_DIFFERENCES). */
export interface ClassifierDifference {
  readonly tier: RequestTier
  readonly reason: string
  readonly why: string
}

/** Where our request parser's verdict differs from "corpus tier Severe <=> 400" (desync-guardian-corpus.test.ts KNOWN_DIFFERENCES). */
export interface ParserDifference {
  readonly ours: 'accept' | 'reject'
  readonly reason: string
}

export interface PureLevelExceptions {
  readonly classifierDifferences: Readonly<Record<string, ClassifierDifference>>
  /** The cases with a line break inside a field: they cannot exist on a socket (desync-guardian-corpus.test.ts SKIPPED). */
  readonly skipped: Readonly<Record<string, string>>
  readonly parserDifferences: Readonly<Record<string, ParserDifference>>
}

export function readPureLevelExceptions (): PureLevelExceptions {
  const classifierDifferences: Record<string, ClassifierDifference> = {}
  for (const [name, value] of Object.entries(readList(CLASSIFIER_TEST, 'EXPECTED_DIFFERENCES'))) {
    const where = `${CLASSIFIER_TEST} EXPECTED_DIFFERENCES ${name}`
    classifierDifferences[name] = { tier: field(value, 'tier', where) as RequestTier, reason: field(value, 'reason', where), why: field(value, 'why', where) }
  }
  const skipped: Record<string, string> = {}
  for (const [name, value] of Object.entries(readList(CORPUS_TEST, 'SKIPPED'))) {
    if (typeof value !== 'string') throw new Error(`${CORPUS_TEST} SKIPPED ${name}: not a string`)
    skipped[name] = value
  }
  const parserDifferences: Record<string, ParserDifference> = {}
  for (const [name, value] of Object.entries(readList(CORPUS_TEST, 'KNOWN_DIFFERENCES'))) {
    const where = `${CORPUS_TEST} KNOWN_DIFFERENCES ${name}`
    const ours = field(value, 'ours', where)
    if (ours !== 'accept' && ours !== 'reject') throw new Error(`${where}: ours is ${ours}`)
    parserDifferences[name] = { ours, reason: field(value, 'reason', where) }
  }
  return { classifierDifferences, skipped, parserDifferences }
}

// --- 2. One request through a live proxy ---

/**
 * The body a request's head announces, so that the request is complete and the exchange runs
 * without waiting for the idle timeout: as many bytes as Content-Length, or the last chunk for
 * chunked. The head is framed by our own request parser (validators/request-parser.ts), as the
 * proxy frames it; a head it rejects gets no body. This only completes the request: the desync
 * classifier reads the head alone, and every assertion is about the head.
 */
export function bodyFor (head: Buffer): Buffer {
  const parser = new RequestParser(CLB_DEFAULTS.maxHeadBytes)
  const { consumed } = parser.push(head)
  const framing = parser.head?.framing
  if (framing === undefined || parser.state === 'invalid') return Buffer.alloc(0)
  if (consumed < head.length) throw new Error('bytes after a complete request: they would be read as a second request')
  if (framing.kind === 'chunked') {
    if (parser.bodyBytes > 0) throw new Error('chunk bytes after the head: not supported')
    return Buffer.from('0\r\n\r\n', 'latin1')
  }
  // Bytes after the blank line (a case whose last header value ends in CRLF) already count as body.
  if (framing.kind === 'content-length') return Buffer.alloc(framing.length - parser.bodyBytes, 'x')
  return Buffer.alloc(0)
}

export interface LiveOutcome {
  /** What the client received for this request (for a closed connection: everything). */
  readonly bytes: Buffer
  readonly closedByProxy: boolean
  /** The client's connection ended with a reset rather than a FIN. */
  readonly reset: boolean
  /** The one exchange record of this request. */
  readonly record: ExchangeRecord
  /** Bytes the raw backend received, on any connection, while this request ran. */
  readonly backendBytes: number
  /** Complete requests the raw backend received while this request ran. */
  readonly backendRequests: readonly ReceivedRequest[]
  /** The index of the raw backend's connection that received the request, when one did. */
  readonly backendConnection: number | null
  /** The diagnostics the proxy logged while this request ran (parsed pino lines). */
  readonly diagnostics: ReadonlyArray<Record<string, unknown>>
}

function backendBytesNow (f: ProxyFixture): number {
  return f.backend.connections.reduce((sum, connection) => sum + connection.received.length, 0)
}

/**
 * Sends `pieces` on a new client connection, one write each; a piece is written only once the
 * proxy has read every byte before it (or closed), so each is a read of its own. Waits for the
 * request's one exchange and its answer, then closes the client's side if the proxy did not.
 * Run one request at a time per fixture (the backend counters are global to the fixture).
 */
export async function sendLive (f: ProxyFixture, pieces: readonly Buffer[]): Promise<LiveOutcome> {
  const bytesBefore = backendBytesNow(f)
  const requestsBefore = f.backend.requests.length
  const diagnosticsBefore = f.diagnostics.length
  const client = await f.connect()
  let sent = 0
  for (const piece of pieces) {
    if (client.closed || client.socket.writableEnded) break
    client.write(piece)
    sent += piece.length
    if (pieces.length > 1) await f.until(() => client.proxyBytesRead() >= sent || client.closed)
  }
  const response = await client.response()
  if (!response.closedByProxy) {
    client.end()
    await client.whenClosed()
  }
  const record = response.records[0]
  if (record === undefined || response.records.length !== 1) throw new Error(`expected one exchange record, got ${response.records.length}`)
  const backendRequests = f.backend.requests.slice(requestsBefore)
  return {
    bytes: response.bytes,
    closedByProxy: response.closedByProxy,
    reset: response.reset,
    record,
    backendBytes: backendBytesNow(f) - bytesBefore,
    backendRequests,
    backendConnection: backendRequests[0]?.connection ?? null,
    diagnostics: f.diagnostics.slice(diagnosticsBefore)
  }
}

/** A deterministic generator (a 32-bit LCG, as in test/validators/desync-classifier.test.ts): anything random takes a seed (style.md lesson 9). */
export function seededRandom (seed: number): (below: number) => number {
  let state = seed >>> 0
  return (below) => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0
    return state % below
  }
}
