import { DEFECTS, defectAction, type Defect } from './defects.js'

export interface ResponseVerdict {
  /** 'reject': CLB would answer with its own 502 instead of relaying the response. */
  readonly action: 'pass' | 'reject'
  /** The defect that decides a rejection: the lowest offset, AWS-documented causes first on a tie. */
  readonly primary: Defect | null
  /** Defects that the profile only warns about. */
  readonly warnings: readonly Defect[]
}

/** The verdict on a response without defects (most of them): one shared, frozen value. */
const CLEAN: ResponseVerdict = Object.freeze({ action: 'pass', primary: null, warnings: Object.freeze([]) })

/** Judges a list of defects under a profile. Pure; the proxy decides what a verdict does. */
export function judge (defects: readonly Defect[], profile: 'clb' | 'strict'): ResponseVerdict {
  if (defects.length === 0) return CLEAN
  let primary: Defect | null = null
  const warnings: Defect[] = []
  for (const found of defects) {
    if (defectAction(found.code, profile) === 'warn') {
      warnings.push(found)
      continue
    }
    if (primary === null || found.offset < primary.offset ||
      (found.offset === primary.offset && DEFECTS[found.code].source === 'aws-documented' && DEFECTS[primary.code].source !== 'aws-documented')) {
      primary = found
    }
  }
  return { action: primary === null ? 'pass' : 'reject', primary, warnings }
}
