/**
 * `clb-proxy check`, the library's entry: AWS's troubleshooting step for ELB 502s ("curl -vko
 * /dev/null server_instance_IP", KC-502), automated. `checkBackend` validates the options, then
 * probes the instance; the parts are
 * - check-options.ts: the options and the request they describe (validated before any socket opens);
 * - check-probe.ts: the socket work (the request, reading the response, the keep-alive wait);
 * - check-report.ts: the report and CLB's verdict on it;
 * - check-text.ts and check-json.ts: the report as text and as JSON (pure).
 * docs/check.md describes the output and the JSON shape.
 */
import { systemClock, type Clock } from '../core/clock.js'
import { resolveCheckOptions, type CheckRequestOptions } from './check-options.js'
import { probeBackend } from './check-probe.js'
import type { CheckReport } from './check-report.js'

export {
  buildCheckRequest,
  CHECK_OPTION_RULES,
  isValidHeader,
  resolveCheckOptions,
  type CheckHeader,
  type CheckRequestOptions,
  type ResolvedCheckOptions
} from './check-options.js'
export { CAPTURE_PREFIX_BYTES, CheckConnectionError } from './check-probe.js'
export {
  formatSeconds,
  type CapturedBytes,
  type CheckDefect,
  type CheckEnding,
  type CheckReport,
  type CheckResponseHead,
  type CheckVerdict,
  type KeepAliveOutcome,
  type KeepAliveReport
} from './check-report.js'
export { renderCheckReport, renderKeepAlivePart, renderKeepAliveWaitLine, renderResponsePart } from './check-text.js'
export { checkReportJson, RAW_EXCERPT_BYTES, type CheckReportJson } from './check-json.js'

/** The options of `checkBackend`: what to send and how to judge it, and two hooks. */
export interface CheckOptions extends CheckRequestOptions {
  /** Measures how long the instance kept the idle connection open. Default: the system clock. */
  readonly clock?: Clock
  /**
   * Called exactly once, when the response is judged and before any keep-alive wait, with the
   * report so far: its keepAlive.outcome is 'waiting' when a wait follows, and final otherwise.
   * The CLI prints the verdict from here so a user is not left staring at a silent terminal.
   */
  readonly onResponseJudged?: (report: CheckReport) => void
}

/**
 * Sends one request to the instance and reads its response until it is complete, invalid, the
 * instance closes, nothing arrives for `timeoutSeconds`, or bytes still arrive after
 * `maxTimeSeconds` (a stream); then, after a complete reusable response, waits up to
 * `keepaliveWaitSeconds` for the instance to close the idle connection. Resolves with the
 * report; rejects with OptionError (before any socket opens) or CheckConnectionError.
 */
export async function checkBackend (input: CheckOptions): Promise<CheckReport> {
  const options = resolveCheckOptions(input)
  return probeBackend(options, { clock: input.clock ?? systemClock, onResponseJudged: input.onResponseJudged })
}
