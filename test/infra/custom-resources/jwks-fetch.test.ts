import { once } from 'node:events';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createJwksFetchHandler, fetchJwks } from '../../../lib/custom-resources/jwks-fetch.ts';

// A loopback issuer whose answers each test scripts: a status and body, or no answer at all.
const KEYS = { keys: [{ kid: 'k1', kty: 'RSA', n: 'abc', e: 'AQAB' }] };
type Answer = { status: number; body: unknown } | 'hang';
let script: Answer[] = [];
let requests = 0;
const hanging: ServerResponse[] = [];
let base = '';
const server = createServer((_req, res) => {
  requests++;
  const answer = script.shift() ?? { status: 200, body: KEYS };
  if (answer === 'hang') {
    hanging.push(res);
    return;
  }
  res.writeHead(answer.status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(answer.body));
});

beforeAll(async () => {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/pool/.well-known/jwks.json`;
});
afterAll(async () => {
  for (const res of hanging) res.destroy();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});
beforeEach(() => {
  script = [];
  requests = 0;
});

const fast = { backoffMs: () => 10, timeoutMs: 200 };

const event = (requestType: 'Create' | 'Update' | 'Delete') =>
  ({
    RequestType: requestType,
    ResponseURL: 'https://cloudformation.invalid/unused',
    StackId: 'stack',
    RequestId: 'req-1',
    LogicalResourceId: 'Jwks',
    ResourceType: 'Custom::Jwks',
    ServiceToken: 'arn',
    PhysicalResourceId: 'jwks',
    ResourceProperties: { ServiceToken: 'arn', JwksUrl: base, DeployNonce: '2026-11-27T12:00:00.000Z' },
    OldResourceProperties: { ServiceToken: 'arn', JwksUrl: base, DeployNonce: '2026-11-26T12:00:00.000Z' },
  }) as unknown as CloudFormationCustomResourceEvent;

describe('JWKS fetch custom resource (Provider framework onEvent)', () => {
  it('returns the JWKS as the Jwks attribute on create and on every update, with a stable physical id', async () => {
    const handler = createJwksFetchHandler(fast);
    for (const type of ['Create', 'Update'] as const) {
      const answer = await handler(event(type));
      expect(answer.PhysicalResourceId).toBe('jwks');
      expect(JSON.parse(answer.Data?.Jwks ?? '{}')).toEqual(KEYS);
    }
    expect(requests).toBe(2);
  });

  it('succeeds on delete without fetching', async () => {
    expect(await createJwksFetchHandler(fast)(event('Delete'))).toEqual({ PhysicalResourceId: 'jwks' });
    expect(requests).toBe(0);
  });

  it('retries a 5xx and a 429, then succeeds', async () => {
    script = [
      { status: 503, body: {} },
      { status: 429, body: {} },
    ];
    expect(await fetchJwks(base, { ...fast, attempts: 3 })).toEqual(KEYS);
    expect(requests).toBe(3);
  });

  it('gives up at once on a 404, saying what it got', async () => {
    script = [{ status: 404, body: {} }];
    await expect(fetchJwks(base, fast)).rejects.toThrow(/answered 404 \(after 1 attempt\)/);
    expect(requests).toBe(1);
  });

  it('times out an issuer that never answers, retries, and fails the deploy with the reason', async () => {
    script = ['hang', 'hang'];
    const started = performance.now();
    await expect(fetchJwks(base, { ...fast, attempts: 2 })).rejects.toThrow(
      /timed out after 200 ms \(after 2 attempts\)/,
    );
    expect(performance.now() - started).toBeLessThan(2000);
    expect(requests).toBe(2);
  });

  it('refuses a JWKS without keys', async () => {
    script = [{ status: 200, body: { keys: [] } }];
    await expect(createJwksFetchHandler(fast)(event('Create'))).rejects.toThrow(/without keys/);
  });
});
