import { once } from 'node:events';
import type { LambdaFunctionURLEvent } from 'aws-lambda';
import { lambdaContext } from './context.ts';
import type { StreamingHandler } from './function-url.ts';
import { HTTP_INTEGRATION_CONTENT_TYPE, LambdaResponseStream, PRELUDE_DELIMITER } from './response-stream.ts';

export interface StreamingResult {
  statusCode: number;
  headers: Record<string, string>;
  cookies: string[];
  body: string;
}

/**
 * Invokes a streaming handler once, as `sam local invoke` does: the body is passed to `onBody` as it
 * streams, and the prelude's status and headers come back at the end.
 */
export async function invokeStreaming(
  handler: StreamingHandler,
  event: LambdaFunctionURLEvent,
  onBody: (text: string) => void = () => undefined,
): Promise<StreamingResult> {
  let pending = Buffer.alloc(0);
  let prelude: { statusCode?: number; headers?: Record<string, string>; cookies?: string[] } | undefined;
  let body = '';
  const emit = (bytes: Buffer) => {
    const text = bytes.toString('utf8');
    body += text;
    onBody(text);
  };
  const stream = new LambdaResponseStream((unit) => {
    if (prelude || stream.contentType !== HTTP_INTEGRATION_CONTENT_TYPE) return emit(unit);
    pending = Buffer.concat([pending, unit]);
    const at = pending.indexOf(PRELUDE_DELIMITER);
    if (at < 0) return;
    prelude = JSON.parse(pending.subarray(0, at).toString('utf8'));
    const rest = pending.subarray(at + PRELUDE_DELIMITER.length);
    if (rest.length > 0) emit(rest);
  });
  const finished = once(stream, 'finish');
  const context = lambdaContext({ functionName: 'chat-stream' });
  await handler(event, stream, context);
  if (!stream.writableEnded) stream.end();
  await finished;
  return {
    statusCode: prelude?.statusCode ?? 200,
    headers: prelude?.headers ?? { 'content-type': stream.contentType },
    cookies: prelude?.cookies ?? [],
    body,
  };
}
