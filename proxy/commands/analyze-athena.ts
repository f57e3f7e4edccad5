/**
 * `clb-proxy analyze --athena`: the official Athena table for CLB logs (ATHENA, spec §3.6,
 * verbatim) and the report of analyze as SQL queries against it, for logs too large to download.
 *
 * Facts the queries rely on: the RegexSerDe reads `backend:port` = `-` as an empty backend_ip and
 * a NULL backend_port (the `([^ ]*)[:-]([0-9]*)` groups); `-1` timings stay -1; the status codes
 * are strings (`-` for TCP/SSL listeners, `0` when no backend answered, spec §3.4). `timestamp`
 * is quoted: it is a type name in Athena's SQL.
 */

/** Spec §3.6, verbatim (ATHENA @ 765e909). */
export const ATHENA_DDL = `   CREATE EXTERNAL TABLE IF NOT EXISTS elb_logs (
    
    timestamp string,
    elb_name string,
    request_ip string,
    request_port int,
    backend_ip string,
    backend_port int,
    request_processing_time double,
    backend_processing_time double,
    client_response_time double,
    elb_response_code string,
    backend_response_code string,
    received_bytes bigint,
    sent_bytes bigint,
    request_verb string,
    url string,
    protocol string,
    user_agent string,
    ssl_cipher string,
    ssl_protocol string
   )
   ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.RegexSerDe'
   WITH SERDEPROPERTIES (
    'serialization.format' = '1',
    'input.regex' = '([^ ]*) ([^ ]*) ([^ ]*):([0-9]*) ([^ ]*)[:-]([0-9]*) ([-.0-9]*) ([-.0-9]*) ([-.0-9]*) (|[-0-9]*) (-|[-0-9]*) ([-0-9]*) ([-0-9]*) \\\\\\"([^ ]*) ([^ ]*) (- |[^ ]*)\\\\\\" (\\"[^\\"]*\\") ([A-Z0-9-]+) ([A-Za-z0-9.-]*)$'
   )
   LOCATION 's3://your_log_bucket/prefix/AWSLogs/AWS_account_ID/elasticloadbalancing/';`

export interface AthenaQuery {
  readonly title: string
  readonly sql: string
}

/** An error line: the load balancer's status is 4XX or 5XX. */
const IS_ERROR = "(elb_response_code LIKE '4%' OR elb_response_code LIKE '5%')"

export const ATHENA_QUERIES: readonly AthenaQuery[] = Object.freeze([
  {
    title: 'Requests and errors per minute (ELB-generated vs backend-generated, KC-502)',
    sql: `SELECT date_trunc('minute', from_iso8601_timestamp("timestamp")) AS minute,
  count(*) AS requests,
  count_if(${IS_ERROR}) AS errors,
  count_if(elb_response_code LIKE '4%' AND backend_response_code <> elb_response_code) AS elb_4xx,
  count_if(elb_response_code LIKE '5%' AND backend_response_code <> elb_response_code) AS elb_5xx,
  count_if(elb_response_code LIKE '4%' AND backend_response_code = elb_response_code) AS backend_4xx,
  count_if(elb_response_code LIKE '5%' AND backend_response_code = elb_response_code) AS backend_5xx
FROM elb_logs
GROUP BY 1
ORDER BY 1;`
  },
  {
    title: 'Error signatures: status codes, whether a backend was reached, whether the timings are -1',
    sql: `SELECT elb_response_code, backend_response_code,
  backend_ip <> '' AS reached_backend,
  request_processing_time = -1 AND backend_processing_time = -1 AND client_response_time = -1 AS timings_all_minus_one,
  count(*) AS requests
FROM elb_logs
WHERE ${IS_ERROR}
GROUP BY 1, 2, 3, 4
ORDER BY 5 DESC;`
  },
  {
    title: "Both codes 502: the backend's own 502s",
    sql: `SELECT count(*) AS backend_502
FROM elb_logs
WHERE elb_response_code = '502' AND backend_response_code = '502';`
  },
  {
    title: 'Keep-alive signature: 504 with no backend and -1 timings (fix: backend keep-alive timeout > idle timeout; CLB-BACKEND "at least 60 seconds")',
    sql: `SELECT date_trunc('minute', from_iso8601_timestamp("timestamp")) AS minute, count(*) AS fast_504
FROM elb_logs
WHERE elb_response_code = '504' AND backend_ip = '' AND request_processing_time = -1
GROUP BY 1
ORDER BY 1;`
  },
  {
    title: 'Instances (backend:port) with the most errors',
    sql: `SELECT backend_ip || ':' || CAST(backend_port AS varchar) AS instance, count(*) AS errors
FROM elb_logs
WHERE ${IS_ERROR} AND backend_ip <> ''
GROUP BY 1
ORDER BY 2 DESC
LIMIT 10;`
  },
  {
    title: 'Paths with the most errors',
    sql: `SELECT url_extract_path(url) AS path, count(*) AS errors
FROM elb_logs
WHERE ${IS_ERROR}
GROUP BY 1
ORDER BY 2 DESC
LIMIT 10;`
  },
  {
    title: 'backend_processing_time percentiles (the Latency metric), seconds',
    sql: `SELECT count(*) AS requests,
  approx_percentile(backend_processing_time, 0.5) AS p50,
  approx_percentile(backend_processing_time, 0.9) AS p90,
  approx_percentile(backend_processing_time, 0.99) AS p99,
  max(backend_processing_time) AS max_seconds
FROM elb_logs
WHERE backend_processing_time >= 0;`
  }
])

export function renderAthena (): string {
  const out = ['-- The Athena table for Classic Load Balancer access logs (Athena user guide, "Querying Classic Load Balancer logs"), verbatim.', '-- Set LOCATION to your bucket and prefix.', ATHENA_DDL, '']
  for (const query of ATHENA_QUERIES) out.push(`-- ${query.title}`, query.sql, '')
  return out.join('\n')
}
