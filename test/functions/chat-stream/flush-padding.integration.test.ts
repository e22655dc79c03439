import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chat } from '../../../local/stack/sse-client.ts';
import { type LocalStack, startLocalStack } from '../../../local/stack/stack.ts';

// Integration: the Function URL emulator's write-hold mode (the production quirk) with the handler's padding on.
let stack: LocalStack;

beforeAll(async () => {
  stack = await startLocalStack({
    redisUrl: null,
    holdBelowBytes: 16_384,
    firstTokenDelayMs: 300,
    perTokenDelayMs: 5,
  });
});
afterAll(() => stack.close());

describe('flush padding against a Function URL that holds small writes', () => {
  it('delivers session_id before the model has produced its first token', async () => {
    const response = await chat(stack.url, await stack.issuer.mint('padding-user'), {
      message: 'hi',
      use_rag: false,
    });
    const sessionEvent = response.events[0];
    expect(sessionEvent?.data.type).toBe('session_id');
    const modelFirstToken = stack.bedrock.firstTokenWrittenAt.at(-1) ?? 0;
    expect(sessionEvent?.at).toBeLessThan(modelFirstToken);
    expect(response.events.at(-1)?.data.type).toBe('done');
  });
});
