import type { Context } from 'aws-lambda';
import {
  HTTP_INTEGRATION_CONTENT_TYPE,
  LambdaResponseStream,
  PRELUDE_DELIMITER,
  type StreamingEvent,
  type StreamingHandler,
} from './response-stream.ts';

export interface Prelude {
  statusCode?: number;
  headers?: Record<string, string>;
  cookies?: string[];
}

/**
 * Runs a streaming handler as the runtime does: each write goes to `onUnit` with the stream's content
 * type, and a stream the handler left open is ended when it returns. The stream can end before the
 * handler returns (work after the response); the two are reported apart.
 */
export function runStreamingHandler(
  handler: StreamingHandler,
  event: StreamingEvent,
  context: Context,
  onUnit: (unit: Buffer, contentType: string) => void,
): { streamEnded: Promise<void>; returned: Promise<void> } {
  const stream = new LambdaResponseStream((unit) => onUnit(unit, stream.contentType));
  const streamEnded = new Promise<void>((resolve) => stream.once('finish', () => resolve()));
  const returned = handler(event, stream, context).then(() => {
    if (!stream.writableEnded) stream.end();
  });
  return { streamEnded, returned };
}

/**
 * Reads a response stream's bytes as the Function URL front end does: with the HTTP-integration content
 * type, the JSON prelude up to 8 NUL bytes is the head and the rest the body; otherwise all is body.
 */
export class PreludeSplitter {
  #pending: Buffer = Buffer.alloc(0);
  #head: Prelude | undefined;
  readonly #onHead: (prelude: Prelude) => void;
  readonly #onBody: (bytes: Buffer) => void;

  constructor(onHead: (prelude: Prelude) => void, onBody: (bytes: Buffer) => void) {
    this.#onHead = onHead;
    this.#onBody = onBody;
  }

  /** True once any byte arrived, head or body. */
  get started(): boolean {
    return this.#head !== undefined || this.#pending.length > 0;
  }

  push(bytes: Buffer, contentType: string): void {
    if (this.#head) {
      this.#onBody(bytes);
      return;
    }
    if (contentType !== HTTP_INTEGRATION_CONTENT_TYPE) {
      this.#setHead({ headers: { 'content-type': contentType } });
      this.#onBody(bytes);
      return;
    }
    this.#pending = Buffer.concat([this.#pending, bytes]);
    const at = this.#pending.indexOf(PRELUDE_DELIMITER);
    if (at < 0) return;
    const rest = this.#pending.subarray(at + PRELUDE_DELIMITER.length);
    this.#setHead(JSON.parse(this.#pending.subarray(0, at).toString('utf8')) as Prelude);
    this.#pending = Buffer.alloc(0);
    if (rest.length > 0) this.#onBody(rest);
  }

  /** The stream ended: a head is owed even for an empty stream, and bytes that never completed a prelude are body. */
  end(): void {
    if (!this.#head) this.#setHead({});
    if (this.#pending.length > 0) this.#onBody(this.#pending);
    this.#pending = Buffer.alloc(0);
  }

  #setHead(prelude: Prelude): void {
    this.#head = prelude;
    this.#onHead(prelude);
  }
}
