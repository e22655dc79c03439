import { afterAll, describe, expect, it } from 'vitest';
import { runSmoke } from '../../../bench/smoke/smoke.ts';
import { type LocalStack, startLocalStack } from '../../../local/stack/stack.ts';

// Integration: `npm run smoke` against the local stack, whose Function URL holds small writes as AWS may.
const stacks: LocalStack[] = [];
afterAll(async () => {
  await Promise.all(stacks.map((s) => s.close()));
});

// The second stack runs its handler in isolated environments: the shared one keeps the first stack's configuration.
const heldStack = async (env?: Record<string, string>) => {
  const stack = await startLocalStack({
    redisUrl: null,
    poller: false,
    holdBelowBytes: 16_384,
    firstTokenDelayMs: 300,
    ...(env ? { env, environments: 'isolated' as const } : {}),
  });
  stacks.push(stack);
  return stack;
};

describe('smoke test (npm run smoke)', () => {
  it('passes when session_id streams at once, and reports each event with its arrival time', async () => {
    const stack = await heldStack();
    const result = await runSmoke(stack.url, await stack.issuer.mint('smoke-user'));
    expect(result.problems).toEqual([]);
    expect(result.ok).toBe(true);
    expect(result.arrivals[0]?.type).toBe('session_id');
    expect(result.arrivals.at(-1)?.type).toBe('done');
    const firstToken = result.arrivals.find((a) => a.type === 'token')?.atMs ?? 0;
    expect(firstToken).toBeGreaterThan(result.arrivals[0]?.atMs ?? Infinity);
  });

  it('fails when the Function URL holds session_id back until the first token (no padding)', async () => {
    const stack = await heldStack({ FLUSH_PADDING_BYTES: '0' });
    const result = await runSmoke(stack.url, await stack.issuer.mint('smoke-user'));
    expect(result.ok).toBe(false);
    expect(result.problems.join(' ')).toMatch(/held or buffered/);
  });

  it('fails on a rejected request', async () => {
    const stack = stacks[0] ?? (await heldStack());
    const result = await runSmoke(stack.url, 'not-a-token');
    expect(result.ok).toBe(false);
    expect(result.problems[0]).toMatch(/^status 401/);
  });
});
