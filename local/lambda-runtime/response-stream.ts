import { Writable } from 'node:stream';
import type { APIGatewayProxyEvent, Context, LambdaFunctionURLEvent } from 'aws-lambda';

/** What the Node.js Lambda runtime puts on the wire before the body of an HTTP-integration stream. */
export const HTTP_INTEGRATION_CONTENT_TYPE = 'application/vnd.awslambda.http-integration-response';
export const PRELUDE_DELIMITER = Buffer.alloc(8);
export const STREAMING_HANDLER = Symbol.for('aws.lambda.runtime.handler.streaming');

/** A handler wrapped by `awslambda.streamifyResponse`: what every emulator here invokes. */
/** A Function URL's event, or API Gateway's REST proxy event (`chat:frontDoor=apigateway`). */
export type StreamingEvent = LambdaFunctionURLEvent | APIGatewayProxyEvent;

export type StreamingHandler = (
  event: StreamingEvent,
  responseStream: LambdaResponseStream,
  context: Context,
) => Promise<unknown>;

type WriteChunk = (chunk: Buffer) => void;

/**
 * The writable a streaming handler receives, as the Lambda runtime builds it: bytes go to `sink` as they
 * are written, the content type can be set until the first write, and `HttpResponseStream.from` hooks the
 * first write to emit its JSON prelude and 8 NUL bytes.
 */
export class LambdaResponseStream extends Writable {
  contentType = 'application/octet-stream';
  _onBeforeFirstWrite: ((write: (data: string | Uint8Array) => void) => void) | undefined;
  #started = false;
  readonly #sink: WriteChunk;

  constructor(sink: WriteChunk) {
    super();
    this.#sink = sink;
  }

  setContentType(contentType: string): void {
    if (this.#started) throw new Error('Content type cannot be set after the first write');
    this.contentType = contentType;
  }

  get started(): boolean {
    return this.#started;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    // One handler write is one unit on the wire, the prelude included, as the runtime sends it.
    const parts: Buffer[] = [];
    if (!this.#started) {
      this.#started = true;
      this._onBeforeFirstWrite?.((data) => parts.push(Buffer.from(data)));
    }
    parts.push(chunk);
    const unit = Buffer.concat(parts);
    if (unit.length > 0) this.#sink(unit);
    callback();
  }
}

export const HttpResponseStream = {
  from(stream: LambdaResponseStream, prelude: Record<string, unknown>): LambdaResponseStream {
    stream.setContentType(HTTP_INTEGRATION_CONTENT_TYPE);
    const metadata = JSON.stringify(prelude);
    stream._onBeforeFirstWrite = (write) => {
      write(metadata);
      write(PRELUDE_DELIMITER);
    };
    return stream;
  },
};

export function streamifyResponse<T extends object>(handler: T): T {
  (handler as Record<symbol, unknown>)[STREAMING_HANDLER] = 'response';
  return handler;
}

/** Installs the runtime's `awslambda` global, merging into whatever object an SDK may have put there. */
export function installAwsLambdaGlobal(): void {
  const scope = globalThis as { awslambda?: Record<string, unknown> };
  const existing = scope.awslambda ?? {};
  if (typeof existing.streamifyResponse !== 'function') existing.streamifyResponse = streamifyResponse;
  if (typeof existing.HttpResponseStream !== 'function' && typeof existing.HttpResponseStream !== 'object') {
    existing.HttpResponseStream = HttpResponseStream;
  }
  scope.awslambda = existing;
}
