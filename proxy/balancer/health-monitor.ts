/**
 * Runs CLB's health checks: one check of each registered instance every interval, whatever its
 * state (CLB-HC: checks run against all registered instances; "Each health check request is
 * independent and lasts the entire interval"), each bounded by the timeout. The results go to
 * `onResult`; the pool turns them into states. One timer per instance, cleared on stop.
 */
import type { Clock } from '../core/clock.js'
import type { HealthCheckResult } from '../core/events.js'
import type { HealthCheckTarget } from '../core/health-check-target.js'
import type { BackendAddress } from '../core/options.js'
import { probeInstance } from './health-check-probe.js'

export interface HealthMonitorSettings {
  readonly target: HealthCheckTarget
  readonly intervalMs: number
  readonly timeoutMs: number
  readonly maxHeadBytes: number
  readonly clock: Clock
  /** PEM CA an HTTPS/SSL check's certificate must chain to; null: any (PoolSettings.backendCa). */
  readonly backendCa: string | null
}

interface Schedule {
  timer: NodeJS.Timeout | null
  readonly abort: AbortController
  /** The check in flight, if any (settles once its socket and timer are gone). */
  pending: Promise<void> | null
}

export class HealthMonitor {
  private readonly schedules = new Map<string, Schedule>()
  private readonly stopping = new Set<Promise<void>>()

  constructor (
    private readonly settings: HealthMonitorSettings,
    private readonly onResult: (id: string, result: HealthCheckResult) => void
  ) {}

  /** Starts checking an instance now (a new instance is in service after its first passing check). */
  start (id: string, address: BackendAddress): void {
    if (this.schedules.has(id)) return
    const schedule: Schedule = { timer: null, abort: new AbortController(), pending: null }
    this.schedules.set(id, schedule)
    const port = this.settings.target.port
    const checked = port === null || port === address.port ? null : `${address.host.includes(':') ? `[${address.host}]` : address.host}:${port}`
    const run = (): void => {
      schedule.timer = setTimeout(run, this.settings.intervalMs)
      const { target, timeoutMs, clock, maxHeadBytes } = this.settings
      const pending = probeInstance(address, { target, timeoutMs, clock, maxHeadBytes, backendCa: this.settings.backendCa }, schedule.abort.signal).then((result) => {
        if (schedule.pending === pending) schedule.pending = null
        if (this.schedules.get(id) !== schedule || schedule.abort.signal.aborted) return
        // A target with its own port checks another address than the instance's: say which one, or
        // "connection refused" on the check's port reads as if the instance were down.
        this.onResult(id, checked === null ? result : { ...result, summary: `${result.summary} (checked ${checked})` })
      })
      schedule.pending = pending
    }
    run()
  }

  /** Stops checking an instance; a check in flight is aborted and its result dropped. */
  stop (id: string): void {
    const schedule = this.schedules.get(id)
    if (schedule === undefined) return
    this.schedules.delete(id)
    if (schedule.timer !== null) clearTimeout(schedule.timer)
    schedule.abort.abort()
    const pending = schedule.pending
    if (pending !== null) {
      this.stopping.add(pending)
      void pending.then(() => this.stopping.delete(pending))
    }
  }

  /** Stops every check; resolves when no check is in flight. */
  async close (): Promise<void> {
    for (const id of [...this.schedules.keys()]) this.stop(id)
    await Promise.all([...this.stopping])
  }
}
