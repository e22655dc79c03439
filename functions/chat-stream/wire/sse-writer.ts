import type { Writable } from 'node:stream';

/**
 * Server-Sent Events on a response body, for every wire format: `data:` events (one per item, JSON
 * unless already a string), an optional `id:` line a client can resume after, the flush padding, and
 * an end marker. Until the first token has gone out, each write carries a comment line of padding
 * (ignored by every SSE parser) so that a small event crosses the size below which a Function URL
 * may hold a write back; later writes are not padded.
 */
export class SseWriter {
  readonly #out: Writable;
  readonly #padding: number;
  #padded = true;

  constructor(out: Writable, paddingBytes: number) {
    this.#out = out;
    this.#padding = paddingBytes;
  }

  /** `false` once the client went away or the body ended. */
  get isOpen(): boolean {
    return !this.#out.destroyed && !this.#out.writableEnded;
  }

  /** Writes the items as consecutive events in one write; `id` goes on the first. `false` when closed. */
  write(items: readonly unknown[], id?: number): boolean {
    if (!this.isOpen) return false;
    if (items.length > 0) this.#out.write(encodeEvents(items, id, this.#padded ? this.#padding : 0));
    return true;
  }

  /** The first token went out: from now on writes leave the padding off. */
  stopPadding(): void {
    this.#padded = false;
  }

  /** Writes the end marker (e.g. the `[DONE]` that OpenAI and AI SDK clients wait for), then ends the body. */
  end(marker?: string): void {
    if (marker !== undefined && this.isOpen) this.#out.write(encodeEvents([marker]));
    this.#out.end();
  }
}

/**
 * JSON leaves U+2028, U+2029 and U+0085 raw, and line readers that split on every Unicode line break
 * (not only the SSE spec's CR and LF) would cut the event there: every data line has them escaped.
 */
const escapeLineBreaks = (data: string) =>
  data.replace(/[\u2028\u2029\u0085]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/** The SSE text of consecutive events, behind a comment of `padding` spaces when asked. */
export function encodeEvents(items: readonly unknown[], id?: number, padding = 0): string {
  const events = items.map((item, index) => {
    const data = escapeLineBreaks(typeof item === 'string' ? item : JSON.stringify(item));
    return `${index === 0 && id !== undefined ? `id: ${id}\n` : ''}data: ${data}\n\n`;
  });
  return `${padding > 0 ? `:${' '.repeat(padding)}\n` : ''}${events.join('')}`;
}
