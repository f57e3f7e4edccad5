import { performance } from 'node:perf_hooks'

/** Injected time source: microseconds since the Unix epoch, monotonic within a process. */
export interface Clock {
  nowMicros (): number
}

export const systemClock: Clock = {
  nowMicros: () => Math.round((performance.timeOrigin + performance.now()) * 1000)
}

/** Seconds between two clock readings, or null when either is missing. */
export function secondsBetween (fromMicros: number | null, toMicros: number | null): number | null {
  if (fromMicros === null || toMicros === null) return null
  return Math.max(0, toMicros - fromMicros) / 1e6
}
