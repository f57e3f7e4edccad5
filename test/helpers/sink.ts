import { Writable } from 'node:stream'

/** A Writable that keeps everything written to it as text, for asserting on CLI output. */
export class Sink extends Writable {
  text = ''
  override _write (chunk: Buffer | string, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.text += chunk.toString()
    this.emit('text')
    callback()
  }

  /** Resolves with the first match of `pattern` in everything written so far or later. */
  waitFor (pattern: RegExp): Promise<RegExpMatchArray> {
    return new Promise((resolve) => {
      const check = (): void => {
        const match = this.text.match(pattern)
        if (match === null) return
        this.off('text', check)
        resolve(match)
      }
      this.on('text', check)
      check()
    })
  }
}
