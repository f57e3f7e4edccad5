/**
 * The listener's stickiness policy, if any (CLB-STICKY): which instance a request's AWSELB cookie
 * names, and which cookie headers the load balancer adds to the response. The cookie bytes come
 * from stickiness.ts; this decides when they are sent.
 */
import type { HeaderField } from '../../validators/field-line.js'
import type { Instance } from './instance.js'
import {
  STICKINESS_CACHE_CONTROL_LINE,
  STICKINESS_COOKIE,
  appCookieStickinessHeaders,
  durationCookieHeaders,
  fieldValues,
  findRequestCookie,
  stickinessCookieValue
} from './stickiness.js'

export type StickinessSettings =
  | { readonly kind: 'duration'; readonly expirationSeconds: number; readonly loadBalancerName: string }
  | { readonly kind: 'application'; readonly cookieName: string; readonly loadBalancerName: string }

/** Which instance a request's cookie named, and whether it could be honoured. */
export interface StickyChoice {
  /** The routable instance the cookie names; null when there is no cookie or its instance is not routable. */
  readonly instance: Instance | null
  /** The request carried an AWSELB cookie. */
  readonly cookieSent: boolean
}

export const NOT_STICKY: StickyChoice = Object.freeze({ instance: null, cookieSent: false })

export class StickinessPolicy {
  private readonly values = new WeakMap<Instance, string>()

  constructor (private readonly settings: StickinessSettings, private readonly instances: () => readonly Instance[]) {}

  /** The AWSELB cookie's value for an instance (stable: derived from the load balancer's name and the instance id). */
  valueOf (instance: Instance): string {
    let value = this.values.get(instance)
    if (value === undefined) {
      value = stickinessCookieValue(this.settings.loadBalancerName, instance.id)
      this.values.set(instance, value)
    }
    return value
  }

  /**
   * CLB-STICKY: "If a cookie is present, the load balancer routes the request to the instance
   * specified in the cookie" (it "does not check whether the cookie is expired"); when that
   * instance is not routable, the request is routed as usual and the cookie replaced.
   */
  choose (requestFields: readonly HeaderField[]): StickyChoice {
    const cookies = fieldValues(requestFields, 'cookie')
    if (cookies.length === 0) return NOT_STICKY
    const value = findRequestCookie(cookies, STICKINESS_COOKIE)
    if (value === null) return NOT_STICKY
    const instance = this.instances().find((candidate) => this.valueOf(candidate) === value && candidate.routable) ?? null
    return { instance, cookieSent: true }
  }

  /**
   * The header lines to add to a response from `instance`:
   * - duration-based: the AWSELB and AWSELBCORS cookies whenever the request was not routed by its
   *   cookie (none sent, or its instance failed: "the session is no longer sticky", a new one starts);
   *   a request routed by its cookie gets none ("does not refresh the expiry time of the cookie");
   * - application-controlled: an AWSELB cookie following the app's cookie when the response sets it;
   *   and when the request's cookie named an instance that failed, a new AWSELB for this instance
   *   (CLB-STICKY: "The load balancer treats the session as now stuck to the new healthy instance,
   *   and continues routing requests to that instance even if the failed instance comes back").
   */
  responseHeaderLines (instance: Instance, choice: StickyChoice, responseFields: readonly HeaderField[]): string[] {
    const lines = this.cookieLines(instance, choice, responseFields)
    // Several captures show `Cache-control: no-cache="set-cookie"` next to AWSELB (clb-behavior.md
    // section 5.8, UNCONFIRMED that the load balancer adds it; docs/clb-choices.md): sent with it.
    if (lines.length > 0) lines.push(STICKINESS_CACHE_CONTROL_LINE)
    return lines
  }

  private cookieLines (instance: Instance, choice: StickyChoice, responseFields: readonly HeaderField[]): string[] {
    const routedByCookie = choice.instance === instance
    const value = this.valueOf(instance)
    if (this.settings.kind === 'duration') return routedByCookie ? [] : durationCookieHeaders(value, this.settings.expirationSeconds)
    const following = appCookieStickinessHeaders(fieldValues(responseFields, 'set-cookie'), this.settings.cookieName, value)
    if (following.length > 0) return following
    if (choice.cookieSent && !routedByCookie) return [`Set-Cookie: ${STICKINESS_COOKIE}=${value};PATH=/`]
    return []
  }
}
