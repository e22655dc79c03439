import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chat, eventTypes } from '../../../local/stack/sse-client.ts';
import { type LocalStack, startLocalStack } from '../../../local/stack/stack.ts';
import { waitFor } from '../../support/wait.ts';

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

describe('without a cache configured', () => {
  it('a delete and an erasure go through: there is nothing cached to mark', async () => {
    const token = await stack.issuer.mint(`iso-delete-${Date.now()}`);
    const api = (path: string, method = 'GET') =>
      fetch(`${stack.url}${path}`, { method, headers: { authorization: `Bearer ${token}` } });
    const turn = await chat(stack.url, token, { message: 'What is a bond?', use_rag: false });
    const sessionId = String(turn.events[0]?.data.session_id);
    const messages = async () => (await api(`/sessions/${sessionId}/messages`)).status;
    // Control: the turn is stored, so the 404 below is the delete's.
    await waitFor(async () => (await messages()) === 200 || undefined, 20_000, 'the turn stored');
    expect((await api(`/sessions/${sessionId}`, 'DELETE')).status).toBe(204);
    expect(await messages()).toBe(404);
    expect((await api('/me', 'DELETE')).status).toBe(204);
  });
});
