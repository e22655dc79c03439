import type { Writable } from 'node:stream';
import type { EventSink } from '../core/ports.ts';
import type { TurnEvent } from '../core/turn-events.ts';

export const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  'x-accel-buffering': 'no',
} as const;

/**
 * One Server-Sent Event of the native protocol. `padding` adds an SSE comment line (ignored by every
 * SSE parser) so that a small event crosses the size below which a Function URL may hold a write back.
 */
export function encodeEvent(event: TurnEvent, padding = 0): string {
  const data = `data: ${JSON.stringify(event)}\n\n`;
  return padding > 0 ? `:${' '.repeat(padding)}\n${data}` : data;
}

/**
 * The native SSE wire format. Until the first token has gone out, each event carries the flush
 * padding so a Function URL does not hold it back; later tokens are not padded.
 */
export class NativeSseSink implements EventSink {
  readonly #out: Writable;
  readonly #padding: number;
  #beforeFirstToken = true;

  constructor(out: Writable, paddingBytes: number) {
    this.#out = out;
    this.#padding = paddingBytes;
  }

  send(event: TurnEvent): boolean {
    if (this.#out.destroyed || this.#out.writableEnded) return false;
    this.#out.write(encodeEvent(event, this.#beforeFirstToken ? this.#padding : 0));
    if (event.type === 'token') this.#beforeFirstToken = false;
    return true;
  }
}
