/**
 * What clb-proxy calls on the logger its diagnostics go to: pino's Logger has these methods, and so
 * can any object a caller gives (`hooks.logger`, docs/library.md). Methods, not function
 * properties: a pino logger's overloaded `info` is accepted as one of these.
 */
export interface DiagnosticsLogger {
  info (details: object, message: string): void
  warn (details: object, message: string): void
  error (details: object, message: string): void
}
