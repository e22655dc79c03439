import type { Writable } from 'node:stream';
import type { WireSink } from '../../core/ports.ts';
import type { TurnEvent } from '../../core/turn-events.ts';
import { encodeEvents, SseWriter } from './sse-writer.ts';

export const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  'x-accel-buffering': 'no',
} as const;

/** The native protocol writes a turn's events as they are, except the answer's id, which it never sent. */
export const toNativeEvent = (event: TurnEvent) =>
  event.type === 'session_id' ? { type: event.type, session_id: event.session_id } : event;

/** One native event as SSE text; `id` lets a client resume after it (`Last-Event-ID`). */
export const encodeEvent = (event: TurnEvent, id?: number, padding = 0): string =>
  encodeEvents([toNativeEvent(event)], id, padding);

/** The native SSE wire format: one event per turn event, each with its id; no end marker. */
export class NativeSseSink implements WireSink {
  readonly #sse: SseWriter;

  constructor(out: Writable, paddingBytes: number) {
    this.#sse = new SseWriter(out, paddingBytes);
  }

  send(event: TurnEvent, id: number): boolean {
    const open = this.#sse.write([toNativeEvent(event)], id);
    if (event.type === 'token') this.#sse.stopPadding();
    return open;
  }

  end(): void {
    this.#sse.end();
  }
}
