import { createHmac } from 'node:crypto';
import { join } from 'node:path';
import { exportJWK, exportSPKI, generateKeyPair, importJWK, SignJWT } from 'jose';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_AUDIENCE, loadOrCreateSigningKey } from '../../local/emulators/oidc-issuer.ts';
import { type RedisProcess, spawnRedisServer } from '../../local/emulators/redis-server.ts';
import { type LocalStack, STATE_DIR, startLocalStack } from '../../local/stack/stack.ts';
import { waitFor } from '../support/wait.ts';

// Hostile inputs and forged tokens on every route (security review M2, L3, L4, L5, L6, L7), over real HTTP
// against the local stack. Each case names the promise, and a control shows the same request shape is
// otherwise accepted, so a refusal is the check at work and not a broken request.
let stack: LocalStack;
let redis: RedisProcess;

beforeAll(async () => {
  redis = await spawnRedisServer();
  stack = await startLocalStack({ redisUrl: redis.url, poller: false, perTokenDelayMs: 1 });
});
afterAll(async () => {
  await stack.close();
  await redis.stop();
});

const newUser = () => `user-${uuidv7()}`;
async function send(
  token: string,
  path: string,
  init: { method?: string; body?: unknown; headers?: Record<string, string> } = {},
) {
  const response = await fetch(`${stack.url}${path}`, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    headers: {
      authorization: `Bearer ${token}`,
      ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...init.headers,
    },
    ...(init.body === undefined
      ? {}
      : { body: typeof init.body === 'string' ? init.body : JSON.stringify(init.body) }),
  });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

/** Signs any claims with the dev issuer's key: what a mis-minting issuer (or a leaked key) would produce. */
async function forge(claims: Record<string, unknown>) {
  const key = await loadOrCreateSigningKey(join(STATE_DIR, 'dev-signing-key.json'));
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', kid: key.publicJwk.kid ?? 'local', typ: 'JWT' })
    .sign(await importJWK(key.privateJwk, 'RS256'));
}

/** Claims the dev issuer would mint for a new user, valid for ten minutes from `now` (seconds). */
const issuedClaims = (now: number) => ({
  iss: stack.issuer.issuer,
  sub: newUser(),
  aud: LOCAL_AUDIENCE,
  token_use: 'id',
  iat: now,
  exp: now + 600,
});

describe('forged tokens', () => {
  it('refuses tokens without exp, with another token_use, issued in the future, or with a sub that could split a key', async () => {
    const now = Math.floor(Date.now() / 1000);
    const valid = issuedClaims(now);
    // Control: the same signer and claims pass, so each refusal below is the one claim it changes.
    expect((await send(await forge(valid), '/sessions')).status).toBe(200);
    expect(
      (
        await send(
          await forge({ ...valid, aud: undefined, token_use: 'access', client_id: LOCAL_AUDIENCE }),
          '/sessions',
        )
      ).status,
    ).toBe(200);
    const forged: Record<string, Record<string, unknown>> = {
      'no exp': { ...valid, exp: undefined },
      'token_use refresh': { ...valid, token_use: 'refresh' },
      'token_use absent': { ...valid, token_use: undefined },
      'an ID token naming the client only as client_id': {
        ...valid,
        aud: 'other',
        client_id: LOCAL_AUDIENCE,
      },
      'an access token naming the client only in aud': { ...valid, token_use: 'access' },
      'iat a day ahead': { ...valid, iat: now + 86_400 },
      'sub with #SESSION#': { ...valid, sub: 'alice#SESSION#collide' },
      'sub with a hash tag': { ...valid, sub: 'a}{b' },
      'sub too long': { ...valid, sub: 'x'.repeat(129) },
    };
    for (const [label, claims] of Object.entries(forged)) {
      const response = await send(await forge(claims), '/sessions');
      expect([label, response.status]).toEqual([label, 401]);
      expect(JSON.parse(response.text)).toMatchObject({ error: { code: 'unauthorized' } });
    }
  });
});

/** A token whose signature part is computed by hand: `alg: none`, or HS256 keyed with public material. */
const handMade = (header: Record<string, unknown>, claims: Record<string, unknown>, hmacKey?: string) => {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const signingInput = `${part(header)}.${part(claims)}`;
  const signature = hmacKey ? createHmac('sha256', hmacKey).update(signingInput).digest('base64url') : '';
  return `${signingInput}.${signature}`;
};

describe("forgeries that never worked (the review's held auth attacks, kept as regressions)", () => {
  it('refuses alg none, HS256 keyed with the public key, other algorithms, embedded keys and bad claims', async () => {
    const key = await loadOrCreateSigningKey(join(STATE_DIR, 'dev-signing-key.json'));
    const kid = key.publicJwk.kid ?? 'local';
    const now = Math.floor(Date.now() / 1000);
    const claims = issuedClaims(now);
    const sign = async (header: Record<string, unknown>, payload: Record<string, unknown>, alg = 'RS256') =>
      new SignJWT(payload)
        .setProtectedHeader({ alg, kid, typ: 'JWT', ...header })
        .sign(await importJWK({ ...key.privateJwk, alg }, alg));
    // Control: the same claims, signed as the issuer signs, are accepted.
    expect((await send(await sign({}, claims), '/sessions')).status).toBe(200);

    const publicKey = await importJWK(key.publicJwk, 'RS256', { extractable: true });
    if (publicKey instanceof Uint8Array) throw new Error('an RSA key imports as a key, not bytes');
    const publicPem = await exportSPKI(publicKey);
    const attacker = await generateKeyPair('RS256', { extractable: true });
    const attackerJwk = { ...(await exportJWK(attacker.publicKey)), kid };
    const signedByAttacker = (header: Record<string, unknown>) =>
      new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid, ...header }).sign(attacker.privateKey);
    const valid = await sign({}, claims);
    const [validHeader, , validSignature] = valid.split('.');
    const forged: Record<string, string> = {
      'alg none': handMade({ alg: 'none', kid, typ: 'JWT' }, claims),
      'alg none, no kid': handMade({ alg: 'none', typ: 'JWT' }, claims),
      'HS256 keyed with the public PEM': handMade({ alg: 'HS256', kid, typ: 'JWT' }, claims, publicPem),
      'HS256 keyed with the public JWK': handMade(
        { alg: 'HS256', kid, typ: 'JWT' },
        claims,
        JSON.stringify(key.publicJwk),
      ),
      'RS512 with the pool key': await sign({}, claims, 'RS512'),
      'PS256 with the pool key': await sign({}, claims, 'PS256'),
      'an embedded jwk header': await signedByAttacker({ jwk: attackerJwk }),
      'a jku header': await signedByAttacker({ jku: 'http://127.0.0.1:1/jwks.json' }),
      'payload swapped under the signature': `${validHeader}.${Buffer.from(
        JSON.stringify({ ...claims, sub: 'victim' }),
      ).toString('base64url')}.${validSignature}`,
      'signature stripped': `${validHeader}.${valid.split('.')[1]}.`,
      'expired a second ago': await sign({}, { ...claims, exp: now - 1 }),
      'nbf in the future': await sign({}, { ...claims, nbf: now + 600 }),
      'another issuer': await sign({}, { ...claims, iss: `${stack.issuer.issuer}/` }),
      'another audience': await sign({}, { ...claims, aud: 'someone-else' }),
      'unknown kid': await sign({ kid: '../../etc/passwd' }, claims),
    };
    for (const [label, token] of Object.entries(forged)) {
      const response = await send(token, '/sessions');
      expect([label, response.status]).toEqual([label, 401]);
    }
  });
});

/** The raw body must hold none of these: JSON leaves them raw, and line readers split on them. */
const LINE_BREAKS = /[\u2028\u2029\u0085]/;
const QUESTION = 'zqx\u2028wvy\u2029kjh\u0085 qqq';

/** Lines as Python's `str.splitlines()` cuts them: at every Unicode line boundary, not only the SSE spec's. */
const PY_LINE_BREAKS = new Set([10, 11, 12, 13, 28, 29, 30, 0x85, 0x2028, 0x2029]);
const splitLines = (text: string) =>
  [...text.replace(/\r\n/g, '\n')].reduce<string[]>(
    (lines, char) => {
      if (PY_LINE_BREAKS.has(char.codePointAt(0) ?? 0)) lines.push('');
      else lines[lines.length - 1] += char;
      return lines;
    },
    [''],
  );

/** The deployment's default model, as an OpenAI client learns it (`GET /v1/models`). */
const deploymentModel = async (token: string): Promise<string> =>
  JSON.parse((await send(token, '/v1/models', { method: 'GET' })).text).data[0].id;

describe('hostile text in streamed answers', () => {
  it('escapes U+2028, U+2029 and U+0085 in the data lines of all three stream formats', async () => {
    const token = await stack.issuer.mint(newUser());
    const streams = {
      native: await send(token, '/', { body: { message: QUESTION, use_rag: false } }),
      'ai-sdk': await send(token, '/api/chat', {
        body: {
          id: `s-${uuidv7()}`,
          use_rag: false,
          messages: [{ id: 'm1', role: 'user', parts: [{ type: 'text', text: QUESTION }] }],
        },
      }),
      openai: await send(token, '/v1/chat/completions', {
        body: {
          model: await deploymentModel(token),
          stream: true,
          messages: [{ role: 'user', content: QUESTION }],
        },
      }),
    };
    for (const [format, response] of Object.entries(streams)) {
      expect([format, response.status]).toEqual([format, 200]);
      const dataLines = response.text
        .split('\n')
        .filter((l) => l.startsWith('data: ') && l !== 'data: [DONE]');
      const decoded = dataLines.map((l) => JSON.parse(l.slice(6)));
      // Control: the characters did reach the stream (the local model quotes the question back).
      expect([format, LINE_BREAKS.test(JSON.stringify(decoded))]).toEqual([format, true]);
      expect([format, LINE_BREAKS.test(response.text)]).toEqual([format, false]);
      // Split the way Python's str.splitlines() does: every data line still parses.
      for (const line of splitLines(response.text)) {
        if (line.startsWith('data: ') && line !== 'data: [DONE]')
          expect(() => JSON.parse(line.slice(6))).not.toThrow();
      }
    }
  });
});

describe('what the OpenAI route echoes is bounded', () => {
  it('refuses an oversized or odd model name with 400 naming model; a fair one is echoed as given', async () => {
    const token = await stack.issuer.mint(newUser());
    const body = (model: string) => ({
      model,
      stream: true,
      messages: [{ role: 'user', content: 'what is an index fund' }],
    });
    for (const model of ['m'.repeat(1_000_000), 'm'.repeat(257), 'gpt<script>', 'a b']) {
      const response = await send(token, '/v1/chat/completions', { body: body(model) });
      expect(response.status).toBe(400);
      expect(response.text.length).toBeLessThan(1000);
      expect(JSON.parse(response.text)).toMatchObject({
        error: { type: 'invalid_request_error', param: 'model' },
      });
    }
    // Control: a model the deployment offers streams, echoed in every chunk, and the response stays small.
    const longest = await deploymentModel(token);
    const ok = await send(token, '/v1/chat/completions', { body: body(longest) });
    expect(ok.status).toBe(200);
    const chunks = ok.text
      .split('\n')
      .filter((l) => l.startsWith('data: {'))
      .map((l) => JSON.parse(l.slice(6)));
    expect(chunks.length).toBeGreaterThan(3);
    expect(chunks.every((c) => c.model === longest)).toBe(true);
    expect(ok.text.length).toBeLessThan(chunks.length * 1000);
  });

  it('a throttled non-streamed completion carries retry-after and x-should-retry: false', async () => {
    const token = await stack.issuer.mint(newUser());
    const request = {
      model: await deploymentModel(token),
      messages: [{ role: 'user', content: 'hi' }],
      metadata: { use_rag: 'false' },
    };
    // Control: without the throttle the same request answers 200.
    expect((await send(token, '/v1/chat/completions', { body: request })).status).toBe(200);
    stack.bedrock.failNext('throttle', 2);
    const throttled = await send(token, '/v1/chat/completions', { body: request });
    expect(throttled.status).toBe(429);
    expect(Number(throttled.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(throttled.headers.get('x-should-retry')).toBe('false');
    expect(JSON.parse(throttled.text)).toMatchObject({
      error: { type: 'rate_limit_error', code: 'throttled' },
    });
  });
});

describe('oversized bodies and crafted cursors get 4xx JSON on every route, never a 5xx', () => {
  it('answers 413 to oversized bodies on every route that takes one', async () => {
    const token = await stack.issuer.mint(newUser());
    const big = 'x'.repeat(1_100_000);
    const cases: Array<[string, string, unknown]> = [
      ['POST', '/', { message: big }],
      ['POST', '/api/v1/chat/message/stream', { message: big }],
      ['POST', '/api/chat', { id: 's1', messages: [{ role: 'user', parts: [{ type: 'text', text: big }] }] }],
      ['POST', '/v1/chat/completions', { messages: [{ role: 'user', content: big }] }],
      ['PATCH', '/sessions/s1', { title: big }],
    ];
    for (const [method, path, body] of cases) {
      const response = await send(token, path, { method, body });
      expect([method, path, response.status]).toEqual([method, path, 413]);
      expect(JSON.parse(response.text).error).toBeDefined();
    }
    // Control: the same routes take a body of fair size (the rename of a missing session is a 404).
    expect((await send(token, '/sessions/s1', { method: 'PATCH', body: { title: 'ok' } })).status).toBe(404);
  });

  it('a cursor naming the own partition with an empty key part is a 400, not a 502', async () => {
    const user = newUser();
    const token = await stack.issuer.mint(user);
    const cursor = (activitySk: string) =>
      Buffer.from(
        JSON.stringify({ pk: `USER#${user}`, sk: 'PROFILE', activityPk: `USER#${user}`, activitySk }),
      ).toString('base64url');
    const crafted = await send(token, `/sessions?cursor=${cursor('')}`);
    expect(crafted.status).toBe(400);
    expect(JSON.parse(crafted.text)).toMatchObject({ error: { code: 'invalid_cursor' } });
    // Control: a well-formed position in the own partition is a query (an empty page), so the 400 is the empty key part.
    expect((await send(token, `/sessions?cursor=${cursor('2026-01-01T00:00:00.000Z#x')}`)).status).toBe(200);
  });
});

describe('with Redis down (this file stops its Redis: keep these last)', () => {
  it('stop and the deletes answer 503 with retry-after, not 502, and the deletes delete nothing', async () => {
    const user = newUser();
    const token = await stack.issuer.mint(user);
    const turn = await send(token, '/', { body: { message: 'keep me', use_rag: false } });
    const sessionId = /"session_id":"([^"]+)"/.exec(turn.text)?.[1] ?? '';
    const sessions = async () =>
      JSON.parse((await send(token, '/sessions')).text).sessions as Array<{
        id: string;
        message_count: number;
      }>;
    const listed = async () => (await sessions()).map((s) => s.id);
    const messages = async () =>
      JSON.parse((await send(token, `/sessions/${sessionId}/messages`)).text).messages as unknown[];
    const poller = stack.startPoller();
    try {
      // Both messages in DynamoDB (the session's count is the archive's; a page of messages may come from
      // the cache, and the consumer may store the question a batch before the answer).
      await waitFor(
        async () => (await sessions()).some((s) => s.id === sessionId && s.message_count === 2) || undefined,
        20_000,
        'the turn stored',
      );
    } finally {
      await poller.stop();
    }
    // Control: with Redis up, stop of an idle session is a 204 and a delete is a 204.
    expect((await send(token, `/sessions/${sessionId}/stop`, { method: 'POST' })).status).toBe(204);
    expect((await send(token, '/sessions/other', { method: 'DELETE' })).status).toBe(204);
    await redis.stop();
    const stop = await send(token, `/sessions/${sessionId}/stop`, { method: 'POST' });
    expect(stop.status).toBe(503);
    expect(JSON.parse(stop.text)).toMatchObject({ error: { code: 'stop_unavailable' } });
    for (const path of [`/sessions/${sessionId}`, '/me']) {
      const response = await send(token, path, { method: 'DELETE' });
      expect([path, response.status]).toEqual([path, 503]);
      expect(Number(response.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(JSON.parse(response.text)).toMatchObject({ error: { code: 'cache_unavailable' } });
    }
    // Nothing deleted from DynamoDB while the cache could not be marked: the retry does the whole job.
    expect(await listed()).toEqual([sessionId]);
    expect(await messages()).toHaveLength(2);
  });
});
