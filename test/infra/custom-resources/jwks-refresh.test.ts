import { describe, expect, it } from 'vitest';
import {
  createJwksRefreshHandler,
  type FunctionConfigApi,
  JWKS_VARIABLE,
} from '../../../lib/custom-resources/jwks-refresh.ts';

const OLD = { keys: [{ kid: 'old', kty: 'RSA', n: 'a', e: 'AQAB' }] };
const ROTATED = {
  keys: [
    { kid: 'old', kty: 'RSA', n: 'a', e: 'AQAB' },
    { kid: 'new', kty: 'RSA', n: 'b', e: 'AQAB' },
  ],
};

// The Lambda API as a fake function configuration, and the issuer as a fake fetch.
function setup(issuerKeys: unknown, variables: Record<string, string>, publishToLatestPublished = false) {
  const writes: Array<{ functionName: string; variables: Record<string, string>; revisionId?: string }> = [];
  const calls: string[] = [];
  const api: FunctionConfigApi = {
    read: async () => ({ variables, revisionId: 'rev-7' }),
    write: async (functionName, next, revisionId) => {
      calls.push(`write ${functionName}`);
      writes.push({ functionName, variables: next, revisionId });
    },
    publish: async (functionName) => {
      calls.push(`publish ${functionName}`);
    },
  };
  const fetch = (async () =>
    new Response(JSON.stringify(issuerKeys), { status: 200 })) as typeof globalThis.fetch;
  const handler = createJwksRefreshHandler({
    api: () => api,
    jwksUrl: 'https://issuer.invalid/.well-known/jwks.json',
    functionName: 'chat-stream',
    publishToLatestPublished,
    fetchOptions: { fetch, backoffMs: () => 1 },
    log: () => {},
  });
  return { handler, writes, calls };
}

describe('JWKS refresh (scheduled)', () => {
  it('leaves the function alone when the keys are the same, in any order and key layout', async () => {
    const sameKeysReordered = { keys: [{ e: 'AQAB', n: 'a', kty: 'RSA', kid: 'old' }] };
    const { handler, writes } = setup(sameKeysReordered, {
      [JWKS_VARIABLE]: JSON.stringify(OLD),
      TABLE_NAME: 't',
    });
    expect(await handler()).toEqual({ changed: false, kids: ['old'] });
    expect(writes).toEqual([]);
  });

  it('writes rotated keys into AUTH_JWKS, keeping every other variable and the revision it read', async () => {
    const { handler, writes } = setup(ROTATED, {
      [JWKS_VARIABLE]: JSON.stringify(OLD),
      TABLE_NAME: 't',
      MODEL_ID: 'm',
    });
    expect(await handler()).toEqual({ changed: true, kids: ['old', 'new'] });
    expect(writes).toEqual([
      {
        functionName: 'chat-stream',
        variables: { [JWKS_VARIABLE]: JSON.stringify(ROTATED), TABLE_NAME: 't', MODEL_ID: 'm' },
        revisionId: 'rev-7',
      },
    ]);
  });

  it('publishes the written configuration to $LATEST.PUBLISHED for a function on Managed Instances, and only then', async () => {
    const managed = setup(ROTATED, { [JWKS_VARIABLE]: JSON.stringify(OLD) }, true);
    expect((await managed.handler()).changed).toBe(true);
    expect(managed.calls).toEqual(['write chat-stream', 'publish chat-stream']);
    const unchanged = setup(OLD, { [JWKS_VARIABLE]: JSON.stringify(OLD) }, true);
    expect((await unchanged.handler()).changed).toBe(false);
    expect(unchanged.calls).toEqual([]);
    // A function on Lambda's default compute runs $LATEST: nothing to publish.
    const standard = setup(ROTATED, { [JWKS_VARIABLE]: JSON.stringify(OLD) });
    await standard.handler();
    expect(standard.calls).toEqual(['write chat-stream']);
  });

  it('repairs a missing or unreadable AUTH_JWKS', async () => {
    const { handler, writes } = setup(OLD, { [JWKS_VARIABLE]: 'not json' });
    expect((await handler()).changed).toBe(true);
    expect(writes[0]?.variables[JWKS_VARIABLE]).toBe(JSON.stringify(OLD));
  });

  it('changes nothing when the issuer cannot be reached', async () => {
    const writes: unknown[] = [];
    const handler = createJwksRefreshHandler({
      api: () => ({
        read: async () => ({ variables: {} }),
        write: async () => void writes.push(1),
        publish: async () => void writes.push(2),
      }),
      jwksUrl: 'https://issuer.invalid/.well-known/jwks.json',
      functionName: 'chat-stream',
      fetchOptions: {
        attempts: 2,
        backoffMs: () => 1,
        fetch: (async () => new Response('', { status: 503 })) as typeof globalThis.fetch,
      },
    });
    await expect(handler()).rejects.toThrow(/answered 503 \(after 2 attempts\)/);
    expect(writes).toEqual([]);
  });
});
