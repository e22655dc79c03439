import { describe, expect, it, vi } from 'vitest';
import { ApiError, apiErrorFrom } from '../../web/src/api.ts';
import { CognitoAuth, CognitoError, jwtClaims } from '../../web/src/auth.ts';
import { parseConfig } from '../../web/src/config.ts';
import { describeProblem, formatWait, isNetworkFailure } from '../../web/src/errors.ts';

// The chat page's plain logic, without a browser: its config contract, how it words failures, and the
// Cognito sign-in and refresh it runs in a deployment (against a stubbed fetch: no AWS here).

const jwt = (claims: Record<string, unknown>) =>
  `h.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.s`;

describe('config.json', () => {
  it('accepts the dev and the cognito forms, without a trailing slash on the API URL', () => {
    expect(
      parseConfig({ apiUrl: 'http://127.0.0.1:3000/', auth: { mode: 'dev', users: { alice: 't1' } } }),
    ).toEqual({ apiUrl: 'http://127.0.0.1:3000', auth: { mode: 'dev', users: { alice: 't1' } } });
    const cognito = {
      mode: 'cognito',
      region: 'eu-west-1',
      userPoolId: 'eu-west-1_abc',
      userPoolClientId: 'client',
    };
    expect(parseConfig({ apiUrl: 'https://x.lambda-url.eu-west-1.on.aws', auth: cognito })).toEqual({
      apiUrl: 'https://x.lambda-url.eu-west-1.on.aws',
      auth: cognito,
    });
  });

  it('names what is wrong and the shape it expects', () => {
    expect(() => parseConfig({ functionUrl: 'https://x', region: 'r' })).toThrow(
      /apiUrl must be an http\(s\) URL\. Expected \{"apiUrl": string, "auth"/,
    );
    expect(() => parseConfig({ apiUrl: 'https://x', auth: { mode: 'dev', users: {} } })).toThrow(
      /auth.users must name a user/,
    );
    expect(() => parseConfig({ apiUrl: 'https://x', auth: { mode: 'cognito', region: 'r' } })).toThrow(
      /auth needs region, userPoolId and userPoolClientId/,
    );
    expect(() => parseConfig({ apiUrl: 'https://x', auth: { mode: 'saml' } })).toThrow(/auth.mode must be/);
  });
});

describe('failures in words a person understands', () => {
  const now = 1_000_000;

  it('429: which limit, and when to send again (body first, retry-after header as fallback)', () => {
    const body = JSON.stringify({
      error: { code: 'limit_exceeded', limit: 'turns_per_minute', retry_after_seconds: 42, message: 'x' },
    });
    expect(describeProblem(apiErrorFrom(429, body), now)).toEqual({
      kind: 'limit',
      message: 'You have sent as many messages as one minute allows.',
      retryAt: now + 42_000,
    });
    expect(describeProblem(apiErrorFrom(429, '', '7'), now).retryAt).toBe(now + 7_000);
    // The AI SDK's APICallError for POST /api/chat carries the status and the raw body.
    const sdkError = Object.assign(new Error(body), { statusCode: 429, responseBody: body });
    expect(describeProblem(sdkError, now).message).toBe(
      'You have sent as many messages as one minute allows.',
    );
  });

  it('the model busy, a lost connection, a conflict, an expired sign-in, a server error', () => {
    expect(describeProblem(new Error('The model is busy right now. Please retry in a moment.'))).toEqual({
      kind: 'busy',
      message: 'The model is busy right now. Try again in a moment.',
    });
    expect(describeProblem(new TypeError('Failed to fetch')).kind).toBe('network');
    expect(isNetworkFailure(new TypeError('NetworkError when attempting to fetch resource.'))).toBe(true);
    expect(isNetworkFailure(new ApiError(0, 'network', 'x'))).toBe(true);
    expect(isNetworkFailure(new TypeError('x is not a function'))).toBe(false);
    expect(describeProblem(apiErrorFrom(409, '{"error":{"code":"turn_in_progress"}}')).kind).toBe('conflict');
    expect(describeProblem(apiErrorFrom(401, '')).message).toMatch(/sign-in has expired/);
    expect(describeProblem(apiErrorFrom(502, '<html>')).message).toBe(
      'The server had a problem. Try again in a moment.',
    );
    expect(
      describeProblem(apiErrorFrom(400, '{"error":{"message":"title must not be blank"}}')).message,
    ).toBe('title must not be blank');
  });

  it('waits in seconds, then minutes, then hours', () => {
    expect([formatWait(400), formatWait(59_000), formatWait(119_000), formatWait(130_000)]).toEqual([
      '1 s',
      '59 s',
      '119 s',
      '2 min 10 s',
    ]);
    expect(formatWait(3 * 3600_000 + 5 * 60_000)).toBe('3 h 5 min');
  });
});

describe('Cognito sign-in (USER_PASSWORD_AUTH over plain fetch)', () => {
  const config = {
    mode: 'cognito' as const,
    region: 'eu-west-1',
    userPoolId: 'eu-west-1_pool',
    userPoolClientId: 'client-1',
  };
  const memory = () => {
    const map = new Map<string, string>();
    return {
      getItem: (k: string) => map.get(k) ?? null,
      setItem: (k: string, v: string) => void map.set(k, v),
      removeItem: (k: string) => void map.delete(k),
    };
  };
  const reply = (status: number, body: unknown) =>
    new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/x-amz-json-1.1' } });

  it('signs in, answers the new-password challenge, keeps the session across a reload, refreshes before expiry', async () => {
    let clock = 1_000_000_000;
    const exp = (s: number) => Math.floor((clock + s * 1000) / 1000);
    const calls: Array<{ target: string; body: Record<string, unknown> }> = [];
    const fetch = vi.fn(async (url: string | URL | Request, init?: RequestInit) => {
      expect(String(url)).toBe('https://cognito-idp.eu-west-1.amazonaws.com/');
      const headers = init?.headers as Record<string, string>;
      const target = headers['x-amz-target']?.split('.').pop() ?? '';
      const body = JSON.parse(String(init?.body)) as Record<string, unknown>;
      calls.push({ target, body });
      if (target === 'InitiateAuth' && body.AuthFlow === 'USER_PASSWORD_AUTH') {
        return reply(200, { ChallengeName: 'NEW_PASSWORD_REQUIRED', Session: 'sess-1' });
      }
      if (target === 'RespondToAuthChallenge') {
        return reply(200, {
          AuthenticationResult: {
            IdToken: jwt({ sub: 'u1', 'cognito:username': 'ana', exp: exp(3600) }),
            RefreshToken: 'refresh-1',
            ExpiresIn: 3600,
          },
        });
      }
      return reply(200, {
        AuthenticationResult: { IdToken: jwt({ sub: 'u1', exp: exp(3600), n: 2 }), ExpiresIn: 3600 },
      });
    });
    const storage = memory();
    const auth = new CognitoAuth(config, { storage, fetch, now: () => clock });
    const first = await auth.signIn('ana', 'temporary');
    expect(first).toEqual({ kind: 'new-password-required', username: 'ana', session: 'sess-1' });
    const done = await auth.setNewPassword('ana', 'a-new-password', 'sess-1');
    if (done.kind !== 'signed-in') throw new Error('not signed in');
    expect(done.signer.user).toBe('ana');
    const token = await done.signer.token();
    expect(jwtClaims(token).sub).toBe('u1');
    expect(calls.map((c) => c.target)).toEqual(['InitiateAuth', 'RespondToAuthChallenge']);
    expect(calls[1]?.body).toMatchObject({
      ClientId: 'client-1',
      ChallengeResponses: { USERNAME: 'ana', NEW_PASSWORD: 'a-new-password' },
    });

    // After a reload: the same session, no network call while the token is fresh.
    const reloaded = new CognitoAuth(config, { storage, fetch, now: () => clock });
    const signer = reloaded.restore();
    expect(await signer?.token()).toBe(token);
    expect(calls).toHaveLength(2);

    // Within five minutes of expiry the token is refreshed first (one call for concurrent requests).
    clock += 56 * 60_000;
    const [a, b] = await Promise.all([signer?.token(), signer?.token()]);
    expect(a).toBe(b);
    expect(a).not.toBe(token);
    expect(calls.map((c) => c.target)).toEqual(['InitiateAuth', 'RespondToAuthChallenge', 'InitiateAuth']);
    expect(calls[2]?.body).toEqual({
      AuthFlow: 'REFRESH_TOKEN_AUTH',
      ClientId: 'client-1',
      AuthParameters: { REFRESH_TOKEN: 'refresh-1' },
    });
    reloaded.signOut();
    auth.signOut();
  });

  it("shows Cognito's own message on a refused password, and signs out when the refresh token is refused", async () => {
    const fetch = vi.fn(async () =>
      reply(400, {
        __type: 'NotAuthorizedException',
        message: 'Incorrect username or password.',
      }),
    );
    const storage = memory();
    storage.setItem(
      'chat.cognito',
      JSON.stringify({ idToken: jwt({ sub: 'u1' }), refreshToken: 'r', expiresAt: 0 }),
    );
    const auth = new CognitoAuth(config, { storage, fetch, now: () => 1000 });
    await expect(auth.signIn('ana', 'wrong')).rejects.toThrow(
      new CognitoError('NotAuthorizedException', 'Incorrect username or password.'),
    );
    let signedOut = false;
    auth.onSignedOut = () => {
      signedOut = true;
    };
    await expect(auth.token()).rejects.toThrow('Incorrect username or password.');
    expect(signedOut).toBe(true);
    expect(storage.getItem('chat.cognito')).toBeNull();
  });
});
