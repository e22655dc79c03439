import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lambdaContext } from '../../../local/lambda-runtime/context.ts';
import { LambdaResponseStream } from '../../../local/lambda-runtime/response-stream.ts';
import { DEMO_USER, type LocalStack, startLocalStack } from '../../../local/stack/stack.ts';
import { restProxyEvent } from '../../support/api-gateway-event.ts';

// The real chat-stream handler writing to the Lambda response stream itself (emulators; no Redis): when
// that stream fails under it (the runtime's connection reset, a response over the size limit), the
// invocation fails with the stream's error instead of an error event nobody listens to, which would end
// the execution environment and every other stream in it.
let stack: LocalStack;
let token: string;
beforeAll(async () => {
  stack = await startLocalStack({ redisUrl: null, poller: false });
  token = await stack.issuer.mint(DEMO_USER);
}, 60_000);
afterAll(() => stack?.close());

const turnEvent = () =>
  restProxyEvent({
    method: 'POST',
    path: '/',
    headers: { Authorization: [`Bearer ${token}`], 'Content-Type': ['application/json'] },
    body: JSON.stringify({ message: 'What is a Roth IRA?', use_rag: false }),
  });

/** A response stream that takes `accepted` writes and then fails, as the runtime's stream does when its connection breaks. */
function failingStream(accepted: number) {
  const written: string[] = [];
  const stream = new LambdaResponseStream((unit) => written.push(unit.toString('utf8')));
  const write = stream._write.bind(stream);
  stream._write = (chunk, encoding, callback) => {
    if (written.length >= accepted) callback(new Error('runtime connection reset'));
    else write(chunk, encoding, callback);
  };
  return { stream, written };
}

describe('the chat-stream handler on a response stream that fails mid-answer', () => {
  it('fails the invocation with the stream error; the process survives and the next turn streams', async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown) => uncaught.push(error);
    process.on('uncaughtException', onUncaught);
    try {
      const { stream, written } = failingStream(3);
      await expect(
        stack.streamHandler(turnEvent(), stream, lambdaContext({ functionName: 'chat-stream' })),
      ).rejects.toThrow('runtime connection reset');
      expect(written.join('')).toContain('"type":"session_id"');
      expect(stream.destroyed).toBe(true);
    } finally {
      process.off('uncaughtException', onUncaught);
    }
    expect(uncaught).toEqual([]);

    const { stream, written } = failingStream(Number.POSITIVE_INFINITY);
    await stack.streamHandler(turnEvent(), stream, lambdaContext({ functionName: 'chat-stream' }));
    expect(written.join('')).toContain('"type":"done"');
  });
});
