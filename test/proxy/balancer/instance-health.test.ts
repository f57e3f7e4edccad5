/**
 * How one health check moves an instance's state (pure): CLB's thresholds, the API's descriptions,
 * and Unknown for a check this machine could not make.
 */
import t from 'tap'
import { ALWAYS_IN_SERVICE, INSTANCE_DESCRIPTIONS, REGISTERING, afterHealthCheck, type HealthStatus } from '../../../proxy/balancer/instance-health.js'
import type { HealthCheckResult } from '../../../proxy/core/events.js'
import { instanceIdFor, instanceLabel } from '../../../proxy/balancer/instance-id.js'

const THRESHOLDS = { healthyThreshold: 3, unhealthyThreshold: 2 }
const PASS: HealthCheckResult = { passed: true, startedAtMicros: 0, durationMs: 1, status: 200, defect: null, error: null, summary: '200 in 1 ms' }
const FAIL: HealthCheckResult = { passed: false, startedAtMicros: 0, durationMs: 1, status: 500, defect: null, error: null, summary: '500, not 200' }
const LOCAL: HealthCheckResult = { passed: false, startedAtMicros: 0, durationMs: 0, status: null, defect: null, error: 'EMFILE', summary: 'EMFILE' }

function run (start: HealthStatus, results: readonly HealthCheckResult[]): HealthStatus[] {
  const states: HealthStatus[] = []
  let status = start
  for (const result of results) {
    status = afterHealthCheck(status, result, THRESHOLDS)
    states.push(status)
  }
  return states
}

const label = (s: HealthStatus): string => `${s.State}/${s.ReasonCode}/${s.Description}/${s.inService ? 'routable' : 'not routable'}`

t.test('a new instance: in service after its first pass; a failure before that keeps "registration in progress" until the threshold', async (t) => {
  t.strictSame(run(REGISTERING, [PASS]).map(label), [`InService/N/A/N/A/routable`])
  t.strictSame(run(REGISTERING, [FAIL, FAIL, PASS]).map(label), [
    `OutOfService/ELB/${INSTANCE_DESCRIPTIONS.registrationInProgress}/not routable`,
    `OutOfService/Instance/${INSTANCE_DESCRIPTIONS.failedUnhealthyThreshold}/not routable`,
    'InService/N/A/N/A/routable'
  ], 'never in service yet: its first pass is enough, even after failures')
})

t.test('in service: out after unhealthyThreshold consecutive failures, a pass in between resets the count', async (t) => {
  t.strictSame(run(ALWAYS_IN_SERVICE, [FAIL, PASS, FAIL, FAIL]).map((s) => [s.State, s.consecutiveFailures]), [
    ['InService', 1], ['InService', 0], ['InService', 1], ['OutOfService', 2]
  ])
})

t.test('out of service: back after healthyThreshold consecutive passes, with the API\'s description in between', async (t) => {
  const out = run(ALWAYS_IN_SERVICE, [FAIL, FAIL]).at(-1) as HealthStatus
  t.strictSame(run(out, [PASS, PASS, FAIL, PASS, PASS, PASS]).map(label), [
    `OutOfService/Instance/${INSTANCE_DESCRIPTIONS.notPassedHealthyThreshold}/not routable`,
    `OutOfService/Instance/${INSTANCE_DESCRIPTIONS.notPassedHealthyThreshold}/not routable`,
    // One failure (below the unhealthy threshold) resets the passes; the description still holds.
    `OutOfService/Instance/${INSTANCE_DESCRIPTIONS.notPassedHealthyThreshold}/not routable`,
    `OutOfService/Instance/${INSTANCE_DESCRIPTIONS.notPassedHealthyThreshold}/not routable`,
    `OutOfService/Instance/${INSTANCE_DESCRIPTIONS.notPassedHealthyThreshold}/not routable`,
    'InService/N/A/N/A/routable'
  ])
})

t.test('a check this machine could not make reads Unknown and leaves the counters and routing alone', async (t) => {
  const [unknown, afterPass] = run(ALWAYS_IN_SERVICE, [LOCAL, PASS])
  t.strictSame([unknown?.State, unknown?.ReasonCode, unknown?.Description, unknown?.inService, unknown?.consecutiveFailures],
    ['Unknown', 'ELB', INSTANCE_DESCRIPTIONS.transientError, true, 0])
  t.equal(afterPass?.State, 'InService')
  const [, belowThreshold] = run(ALWAYS_IN_SERVICE, [LOCAL, FAIL])
  t.strictSame([belowThreshold?.State, belowThreshold?.consecutiveFailures], ['InService', 1], 'Unknown, then a failure below the threshold: in service again')
  const [, stillRegistering] = run(REGISTERING, [LOCAL, FAIL])
  t.equal(stillRegistering?.Description, INSTANCE_DESCRIPTIONS.registrationInProgress)
  const out = run(ALWAYS_IN_SERVICE, [FAIL, FAIL]).at(-1) as HealthStatus
  const [, outAgain] = run(out, [LOCAL, FAIL])
  t.strictSame([outAgain?.State, outAgain?.Description], ['OutOfService', INSTANCE_DESCRIPTIONS.failedUnhealthyThreshold])
})

t.test('instance ids: i- and 17 hex digits, stable for an address, different for another; IPv6 labels in brackets', async (t) => {
  const id = instanceIdFor({ host: '127.0.0.1', port: 3000 })
  t.match(id, /^i-[0-9a-f]{17}$/)
  t.equal(instanceIdFor({ host: '127.0.0.1', port: 3000 }), id)
  t.not(instanceIdFor({ host: '127.0.0.1', port: 3001 }), id)
  t.equal(instanceLabel({ host: '::1', port: 3000 }), '[::1]:3000')
  t.equal(instanceLabel({ host: 'app', port: 80 }), 'app:80')
})
