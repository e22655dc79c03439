import type { Writable } from 'node:stream';
import type { Context } from 'aws-lambda';
import { RequestRejected } from '../core/errors.ts';
import type { HttpRequest } from './http-request.ts';

/** One invocation after routing and auth: who asks, and where to leave the work that must finish before returning. */
export interface Invocation {
  /** The request, normalized from whichever front door's event (http-request.ts). */
  event: HttpRequest;
  context: Context;
  userId: string;
  /** Monotonic time the request reached the handler. */
  startedAt: number;
  /** Work the invocation awaits after its response body ended (Lambda freezes after the return). */
  afterResponse(work: Promise<void>): void;
}

/**
 * A streamed body writes to the response stream itself once the status and headers are set, with no
 * stream in between (each token is one write the runtime sends); it settles when its turn has finished.
 */
export type StreamedBody = (out: Writable) => Promise<void>;

export type RouteResponse = {
  statusCode: number;
  headers: Record<string, string>;
  body: string | StreamedBody;
};

/** A route answers an invocation; `id` is the path's session id, or '' when the route has none. */
export type RouteHandler = (inv: Invocation, id: string) => Promise<RouteResponse>;

export const json = (
  statusCode: number,
  body: unknown,
  headers: Record<string, string> = {},
): RouteResponse => ({
  statusCode,
  headers: { 'content-type': 'application/json', ...headers },
  body: JSON.stringify(body),
});

export const noContent = (): RouteResponse => ({ statusCode: 204, headers: {}, body: '' });

/** Media type and size, checked before the body is parsed (the router already checked the method). */
export function readJsonBody(
  event: Pick<HttpRequest, 'headers' | 'body' | 'isBase64Encoded'>,
  maxBodyBytes: number,
): string {
  const contentType = event.headers['content-type'] ?? '';
  if (!/^application\/json\b/i.test(contentType)) {
    throw new RequestRejected(
      'unsupported_media_type',
      'unsupported_media_type',
      'Send the body as application/json.',
    );
  }
  const body = event.isBase64Encoded
    ? Buffer.from(event.body ?? '', 'base64').toString('utf8')
    : (event.body ?? '');
  if (Buffer.byteLength(body) > maxBodyBytes) {
    throw new RequestRejected(
      'too_large',
      'payload_too_large',
      `The body must be at most ${maxBodyBytes} bytes.`,
    );
  }
  return body;
}
