import type { Writable } from 'node:stream';
import { encodeEvent, type StreamEvent } from '../core/protocol.ts';
import type { EventSink } from '../core/turn.ts';

/**
 * Writes SSE events to the response body. Until the first token has gone out, each event carries the
 * flush padding so a Function URL does not hold it back; later tokens are not padded.
 */
export class SseSink implements EventSink {
  readonly #out: Writable;
  readonly #padding: number;
  #beforeFirstToken = true;

  constructor(out: Writable, paddingBytes: number) {
    this.#out = out;
    this.#padding = paddingBytes;
  }

  send(event: StreamEvent): boolean {
    if (this.#out.destroyed || this.#out.writableEnded) return false;
    this.#out.write(encodeEvent(event, this.#beforeFirstToken ? this.#padding : 0));
    if (event.type === 'token') this.#beforeFirstToken = false;
    return true;
  }
}
