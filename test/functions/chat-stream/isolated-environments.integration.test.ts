import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chat, eventTypes } from '../../../local/stack/sse-client.ts';
import { type LocalStack, startLocalStack } from '../../../local/stack/stack.ts';

// Integration: the production handler in worker-thread execution environments (dynalite, fauxqs, emulators).
let stack: LocalStack;
beforeAll(async () => {
  stack = await startLocalStack({ redisUrl: null, environments: 'isolated', maxEnvironments: 2 });
});
afterAll(() => stack.close());

describe('the stream handler in isolated execution environments', () => {
  it('answers concurrent turns, each from an environment of its own', async () => {
    const tokens = await Promise.all(['iso-a', 'iso-b'].map((user) => stack.issuer.mint(user)));
    const responses = await Promise.all(
      tokens.map((token) => chat(stack.url, token, { message: 'What is an index fund?' })),
    );
    for (const response of responses) {
      expect(response.status).toBe(200);
      expect(eventTypes(response)[0]).toBe('session_id');
      expect(eventTypes(response).at(-1)).toBe('done');
    }
  });
});
