import type { Writable } from 'node:stream';
import type { TurnEvent } from '../core/turn-events.ts';
import { sseJson, type WireSink } from './wire-sink.ts';

export const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  'x-accel-buffering': 'no',
} as const;

/** The native protocol writes a turn's events as they are, except the answer's id, which it never sent. */
const toWire = (event: TurnEvent) =>
  event.type === 'session_id' ? { type: event.type, session_id: event.session_id } : event;

/**
 * One Server-Sent Event of the native protocol; `id` lets a client resume after it (`Last-Event-ID`).
 * `padding` adds an SSE comment line (ignored by every SSE parser) so that a small event crosses the
 * size below which a Function URL may hold a write back.
 */
export function encodeEvent(event: TurnEvent, id?: number, padding = 0): string {
  const data = `${id === undefined ? '' : `id: ${id}\n`}data: ${sseJson(toWire(event))}\n\n`;
  return padding > 0 ? `:${' '.repeat(padding)}\n${data}` : data;
}

/**
 * The native SSE wire format. Until the first token has gone out, each event carries the flush
 * padding so a Function URL does not hold it back; later tokens are not padded.
 */
export class NativeSseSink implements WireSink {
  readonly #out: Writable;
  readonly #padding: number;
  #beforeFirstToken = true;

  constructor(out: Writable, paddingBytes: number) {
    this.#out = out;
    this.#padding = paddingBytes;
  }

  send(event: TurnEvent, id: number): boolean {
    if (this.#out.destroyed || this.#out.writableEnded) return false;
    this.#out.write(encodeEvent(event, id, this.#beforeFirstToken ? this.#padding : 0));
    if (event.type === 'token') this.#beforeFirstToken = false;
    return true;
  }
}
