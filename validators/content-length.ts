import { parseDecimal } from './bytes.js'
import type { HeaderField } from './field-line.js'

export type ContentLengthProblem = 'not-integer' | 'overflow' | 'different' | 'same-duplicate'

export interface ContentLengthFinding {
  readonly problem: ContentLengthProblem
  readonly offset: number
  readonly message: string
}

export interface ContentLengthResult {
  /** The framing length, or null when absent or unusable. */
  readonly length: number | null
  readonly present: boolean
  readonly findings: readonly ContentLengthFinding[]
}

/**
 * Reads every Content-Length field (RFC 9110 section 8.6: Content-Length = 1*DIGIT). A list of
 * identical values, or the same value repeated, MAY be replaced by one value; different values
 * are an unrecoverable framing error (RFC 9112 section 6.3 rule 5). The result is read-only (a
 * result without findings shares one frozen, empty list).
 */
export function analyzeContentLength (fields: readonly HeaderField[]): ContentLengthResult {
  // Made on the first finding: most heads have none.
  let findings: ContentLengthFinding[] | null = null
  let length: number | null = null
  let count = 0
  let present = false
  for (const field of fields) {
    if (field.lowerName !== 'content-length') continue
    present = true
    // The usual case, one value of digits only: the list reading below would find the same.
    const single = parseDecimal(field.value)
    if (single >= 0 && (length === null || length === single)) {
      length = single
      count++
      continue
    }
    let itemOffset = field.valueOffset
    for (const rawItem of field.value.split(',')) {
      const leading = rawItem.length - rawItem.trimStart().length
      const item = rawItem.trim()
      const value = parseDecimal(item)
      if (value === -1) {
        findings = [{ problem: 'not-integer', offset: itemOffset + leading + firstNonDigit(item), message: `Content-Length value "${field.value}" is not an integer` }]
        return { length: null, present, findings }
      }
      if (value === -2) {
        findings = [{ problem: 'overflow', offset: itemOffset + leading, message: `Content-Length value "${item}" is too large` }]
        return { length: null, present, findings }
      }
      count++
      if (length === null) {
        length = value
      } else if (length !== value) {
        findings = [{ problem: 'different', offset: itemOffset + leading, message: `Content-Length ${value} contradicts an earlier Content-Length ${length}` }]
        return { length: null, present, findings }
      }
      itemOffset += rawItem.length + 1
    }
  }
  if (count > 1) {
    const second = fields.filter((f) => f.lowerName === 'content-length')[1] ?? fields.find((f) => f.lowerName === 'content-length')
    findings = [{ problem: 'same-duplicate', offset: second?.offset ?? 0, message: `Content-Length ${String(length)} is given ${count} times` }]
  }
  return findings === null ? (present ? { length, present, findings: NO_FINDINGS } : ABSENT) : { length, present, findings }
}

const NO_FINDINGS: readonly ContentLengthFinding[] = Object.freeze([])
const ABSENT: ContentLengthResult = Object.freeze({ length: null, present: false, findings: NO_FINDINGS })

function firstNonDigit (item: string): number {
  for (let i = 0; i < item.length; i++) {
    const c = item.charCodeAt(i)
    if (c < 0x30 || c > 0x39) return i
  }
  return 0
}
