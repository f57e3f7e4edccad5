/**
 * CLB's predefined security policies for HTTPS and SSL listeners: the TLS protocols, the ciphers
 * (OpenSSL names, in the table's order) and Server Order Preference, and the `tls.createServer`
 * options that enable exactly them.
 *
 * Source: AWS, "Predefined SSL security policies for Classic Load Balancers"
 * (https://docs.aws.amazon.com/elasticloadbalancing/latest/classic/elb-security-policy-table.html),
 * read in awsdocs/elb-classic-load-balancers-user-guide, doc_source/elb-security-policy-table.md:
 * - "Protocols by policy" and "Ciphers by policy" at commit 1318b0bd528dce7ed653c523c09996449542bab3
 *   (the current layout of the page);
 * - the "Server Order Preference" row (♦ for every policy) at commit
 *   0ca7bcc534e14969174f5ce4c4f5bc66dba78d7d, the earlier one-table layout of the same page: "If you
 *   select a policy that is enabled for Server Order Preference, the load balancer uses the ciphers
 *   in the order that they are specified in this table".
 * The two commits agree on which ciphers each policy enables; they list ECDHE-RSA-AES256-SHA and
 * ECDHE-ECDSA-AES256-SHA in opposite orders, and the current one's order is encoded here (a server
 * holds one certificate type, so at most one of the two can be negotiated with it and their
 * relative order never decides a handshake).
 *
 * TLS 1.3 is in none of these policies, so every listener stops at TLS 1.2.
 */
import type { SecureVersion } from 'node:tls'
import type { SecurityPolicyName } from '../core/options.js'

/** Node's names for the protocol versions; AWS's are the same with a `Protocol-` prefix (`Protocol-TLSv1.1`). */
export type TlsProtocolVersion = 'TLSv1' | 'TLSv1.1' | 'TLSv1.2'

export interface SecurityPolicy {
  readonly name: SecurityPolicyName
  /** Enabled protocols, oldest first; always a contiguous range (Node takes a minimum and a maximum). */
  readonly protocols: readonly TlsProtocolVersion[]
  /** Enabled ciphers, OpenSSL names, in the table's order (the server's preference order). */
  readonly ciphers: readonly string[]
  /** The load balancer picks the first of its ciphers the client offers, not the client's first. */
  readonly serverOrderPreference: boolean
}

// "Ciphers by policy", ELBSecurityPolicy-TLS-1-2-2017-01: the twelve TLS 1.2 ciphers (GCM, SHA256, SHA384).
const TLS_1_2_2017_01_CIPHERS = Object.freeze([
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES128-SHA256',
  'ECDHE-RSA-AES128-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-AES256-SHA384',
  'ECDHE-RSA-AES256-SHA384',
  'AES128-GCM-SHA256',
  'AES128-SHA256',
  'AES256-GCM-SHA384',
  'AES256-SHA256',
])

// "Ciphers by policy", ELBSecurityPolicy-2016-08: the same twelve plus six SHA1 (CBC) ciphers.
const POLICY_2016_08_CIPHERS = Object.freeze([
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES128-SHA256',
  'ECDHE-RSA-AES128-SHA256',
  'ECDHE-ECDSA-AES128-SHA',
  'ECDHE-RSA-AES128-SHA',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-AES256-SHA384',
  'ECDHE-RSA-AES256-SHA384',
  'ECDHE-ECDSA-AES256-SHA',
  'ECDHE-RSA-AES256-SHA',
  'AES128-GCM-SHA256',
  'AES128-SHA256',
  'AES128-SHA',
  'AES256-GCM-SHA384',
  'AES256-SHA256',
  'AES256-SHA',
])

/** Every policy `securityPolicy` can name (SECURITY_POLICY_NAMES), as AWS's table defines it. */
export const SECURITY_POLICIES: Readonly<Record<SecurityPolicyName, SecurityPolicy>> = Object.freeze({
  // "Protocols by policy": TLS 1.2 Yes, TLS 1.1 Yes, TLS 1.0 Yes. The default policy ("If you create an
  // HTTPS/SSL listener without associating a security policy, Elastic Load Balancing associates the
  // default predefined security policy, ELBSecurityPolicy-2016-08", ssl-config-update.md).
  'ELBSecurityPolicy-2016-08': Object.freeze({
    name: 'ELBSecurityPolicy-2016-08',
    protocols: Object.freeze(['TLSv1', 'TLSv1.1', 'TLSv1.2'] as const),
    ciphers: POLICY_2016_08_CIPHERS,
    serverOrderPreference: true,
  }),
  // "Protocols by policy": TLS 1.2 Yes, TLS 1.1 No, TLS 1.0 No.
  'ELBSecurityPolicy-TLS-1-2-2017-01': Object.freeze({
    name: 'ELBSecurityPolicy-TLS-1-2-2017-01',
    protocols: Object.freeze(['TLSv1.2'] as const),
    ciphers: TLS_1_2_2017_01_CIPHERS,
    serverOrderPreference: true,
  }),
})

/** The policies in SECURITY_POLICY_NAMES order (the default first), for docs and `--help`. */
export const SECURITY_POLICY_LIST: readonly SecurityPolicy[] = Object.freeze(Object.values(SECURITY_POLICIES))

/** What `tls.createServer` needs, besides the certificate, to offer exactly one policy. */
export interface TlsServerPolicyOptions {
  readonly minVersion: SecureVersion
  readonly maxVersion: SecureVersion
  /** OpenSSL cipher string: the policy's ciphers in order, then `@SECLEVEL=0` when TLSv1/TLSv1.1 are enabled. */
  readonly ciphers: string
  readonly honorCipherOrder: boolean
}

/**
 * Node 20 bundles OpenSSL 3, whose default security level 1 leaves no signature algorithm usable
 * in TLS 1.0 and 1.1 (they sign with MD5+SHA1): such a handshake fails on the server with
 * ERR_SSL_NO_SUITABLE_SIGNATURE_ALGORITHM even when minVersion is 'TLSv1' and the cipher is enabled
 * (measured in test/proxy/data-path/security-policies.test.ts). Level 0 makes them work; the cipher
 * list and minVersion still bound what is offered. A TLS 1.2-only policy keeps OpenSSL's default.
 */
const LEGACY_PROTOCOLS_SECURITY_LEVEL = '@SECLEVEL=0'

/** The options for `tls.createServer({ ...tlsServerOptionsFor(policy), cert, key })`. */
export function tlsServerOptionsFor(policyName: SecurityPolicyName): TlsServerPolicyOptions {
  const policy = SECURITY_POLICIES[policyName]
  const enablesLegacyProtocols = policy.protocols.some((protocol) => protocol !== 'TLSv1.2')
  const cipherList = enablesLegacyProtocols ? [...policy.ciphers, LEGACY_PROTOCOLS_SECURITY_LEVEL] : policy.ciphers
  return Object.freeze({
    minVersion: policy.protocols[0] as SecureVersion,
    maxVersion: policy.protocols[policy.protocols.length - 1] as SecureVersion,
    ciphers: cipherList.join(':'),
    honorCipherOrder: policy.serverOrderPreference,
  })
}
