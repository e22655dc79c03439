import { lambdaContext } from './context.ts';
import { type Prelude, PreludeSplitter, runStreamingHandler } from './invocation.ts';
import type { StreamingEvent, StreamingHandler } from './response-stream.ts';

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
  event: StreamingEvent,
  onBody: (text: string) => void = () => undefined,
): Promise<StreamingResult> {
  let prelude: Prelude = {};
  let body = '';
  const splitter = new PreludeSplitter(
    (head) => {
      prelude = head;
    },
    (bytes) => {
      const text = bytes.toString('utf8');
      body += text;
      onBody(text);
    },
  );
  const run = runStreamingHandler(
    handler,
    event,
    lambdaContext({ functionName: 'chat-stream' }),
    (unit, type) => splitter.push(unit, type),
  );
  await run.returned;
  await run.streamEnded;
  splitter.end();
  return {
    statusCode: prelude.statusCode ?? 200,
    headers: prelude.headers ?? {},
    cookies: prelude.cookies ?? [],
    body,
  };
}
