import { createHash } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  LOCAL_AUDIENCE,
  loadOrCreateSigningKey,
  type OidcIssuer,
  startOidcIssuer,
} from '../../local/emulators/oidc-issuer.ts';
import { ApiError, apiErrorFrom } from '../../web/src/api.ts';
import { jwtClaims, OAuthClient, OAuthError } from '../../web/src/auth.ts';
import { type OAuthConfig, parseConfig } from '../../web/src/config.ts';
import { describeProblem, formatWait, isNetworkFailure } from '../../web/src/errors.ts';
import { conversationJson, conversationMarkdown, fileNameOf } from '../../web/src/exports.ts';
import { plural } from '../../web/src/plural.ts';
import { groupByDate } from '../../web/src/Sessions.tsx';

// The chat page's plain logic, without a browser: its config contract, how it words failures, and the
// OAuth sign-in it runs in a deployment (against the local OIDC emulator, which serves managed login's
// endpoints).

const jwt = (claims: Record<string, unknown>) =>
  `h.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.s`;

describe('config.json', () => {
  it('accepts the dev and the oauth forms, without a trailing slash on the API URL', () => {
    expect(
      parseConfig({ apiUrl: 'http://127.0.0.1:3000/', auth: { mode: 'dev', users: { alice: 't1' } } }),
    ).toEqual({ apiUrl: 'http://127.0.0.1:3000', auth: { mode: 'dev', users: { alice: 't1' } } });
    const domain = 'https://chat.auth.eu-west-1.amazoncognito.com';
    const oauth = {
      mode: 'oauth',
      clientId: 'client',
      authorizeEndpoint: `${domain}/oauth2/authorize`,
      tokenEndpoint: `${domain}/oauth2/token`,
      revokeEndpoint: `${domain}/oauth2/revoke`,
      logoutEndpoint: `${domain}/logout`,
      scopes: ['openid', 'email'],
    };
    expect(parseConfig({ apiUrl: 'https://x.lambda-url.eu-west-1.on.aws', auth: oauth })).toEqual({
      apiUrl: 'https://x.lambda-url.eu-west-1.on.aws',
      auth: oauth,
    });
  });

  it('names what is wrong and the shape it expects', () => {
    expect(() => parseConfig({ functionUrl: 'https://x', region: 'r' })).toThrow(
      /apiUrl must be an http\(s\) URL\. Expected \{"apiUrl": string, "auth"/,
    );
    expect(() => parseConfig({ apiUrl: 'https://x', auth: { mode: 'dev', users: {} } })).toThrow(
      /auth.users must name a user/,
    );
    expect(() => parseConfig({ apiUrl: 'https://x', auth: { mode: 'oauth', clientId: 'c' } })).toThrow(
      /auth.authorizeEndpoint must be an http\(s\) URL/,
    );
    expect(() => parseConfig({ apiUrl: 'https://x', auth: { mode: 'cognito', region: 'r' } })).toThrow(
      /auth.mode must be "dev" or "oauth"/,
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
    // A 4xx the API will refuse again is `refused` (the page gives the draft back, offers no retry).
    expect(describeProblem(apiErrorFrom(400, '{"error":{"message":"title must not be blank"}}'))).toEqual({
      kind: 'refused',
      message: 'title must not be blank',
    });
    expect(describeProblem(apiErrorFrom(413, '')).kind).toBe('refused');
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

describe('OAuth sign-in (authorization code + PKCE) against the local managed-login emulator', () => {
  let issuer: OidcIssuer;
  let config: OAuthConfig;
  const PAGE = 'http://127.0.0.1:5999';
  beforeAll(async () => {
    const key = await loadOrCreateSigningKey(join(await mkdtemp(join(tmpdir(), 'oauth-')), 'key.json'));
    issuer = await startOidcIssuer(key);
    issuer.users.set('ana', 'subject-ana');
    config = {
      mode: 'oauth',
      clientId: LOCAL_AUDIENCE,
      authorizeEndpoint: `${issuer.url}/oauth2/authorize`,
      tokenEndpoint: `${issuer.url}/oauth2/token`,
      revokeEndpoint: `${issuer.url}/oauth2/revoke`,
      logoutEndpoint: `${issuer.url}/logout`,
      scopes: ['openid', 'email'],
    };
  });
  afterAll(() => issuer.close());

  const memory = () => {
    const map = new Map<string, string>();
    return {
      getItem: (k: string) => map.get(k) ?? null,
      setItem: (k: string, v: string) => void map.set(k, v),
      removeItem: (k: string) => void map.delete(k),
      map,
    };
  };
  /** A browser tab: where it is, and where the client sent it. */
  const tab = (hash = '') => {
    const visited: string[] = [];
    return { origin: PAGE, hash, assign: (url: string) => void visited.push(url), visited };
  };
  /** The person on the managed login page: picks their user; the page answers with a redirect. */
  async function signInAs(authorizeUrl: string, username: string): Promise<string> {
    const page = await fetch(authorizeUrl);
    expect(page.status).toBe(200);
    const form = new URLSearchParams(new URL(authorizeUrl).search);
    form.set('username', username);
    const answer = await fetch(`${issuer.url}/oauth2/authorize`, {
      method: 'POST',
      body: form,
      redirect: 'manual',
    });
    expect(answer.status).toBe(302);
    return answer.headers.get('location') ?? '';
  }

  it('signs in with PKCE S256 and a state, keeps the session across a reload, refreshes before expiry, revokes on sign-out', async () => {
    const storage = memory();
    const browser = tab('#/c/abc');
    let clock = Date.now();
    const auth = new OAuthClient(config, { storage, location: browser, now: () => clock });
    await auth.signIn();
    const authorize = new URL(browser.visited[0] ?? '');
    expect(`${authorize.origin}${authorize.pathname}`).toBe(config.authorizeEndpoint);
    const query = Object.fromEntries(authorize.searchParams);
    expect(query).toMatchObject({
      response_type: 'code',
      client_id: LOCAL_AUDIENCE,
      redirect_uri: `${PAGE}/`,
      scope: 'openid email',
      code_challenge_method: 'S256',
    });
    // The challenge is S256 of the verifier kept for the way back, and the verifier never leaves the tab.
    const pending = JSON.parse(storage.getItem('chat.oauth.pending') ?? '{}') as {
      verifier: string;
      state: string;
    };
    expect(pending.verifier).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(query.code_challenge).toBe(createHash('sha256').update(pending.verifier).digest('base64url'));
    expect(query.state).toBe(pending.state);
    expect(authorize.toString()).not.toContain(pending.verifier);

    const back = new URL(await signInAs(authorize.toString(), 'ana'));
    expect(`${back.origin}${back.pathname}`).toBe(`${PAGE}/`);
    const done = await auth.completeSignIn(back.search);
    expect(done?.returnTo).toBe('#/c/abc');
    expect(done?.signer.user).toBe('ana');
    const token = (await done?.signer.token()) ?? '';
    expect(jwtClaims(token)).toMatchObject({ sub: 'subject-ana', username: 'ana' });
    expect(storage.getItem('chat.oauth.pending')).toBeNull();
    expect(issuer.liveRefreshTokens()).toBe(1);
    // The code is single use.
    await expect(auth.completeSignIn(back.search)).rejects.toMatchObject({ code: 'invalid_state' });

    // A reload: the same session, no new sign-in.
    const reloaded = new OAuthClient(config, { storage, location: tab(), now: () => clock });
    const signer = reloaded.restore();
    expect(await signer?.token()).toBe(token);
    // Within five minutes of expiry the token is refreshed first, once for concurrent requests.
    clock += 56 * 60_000;
    await new Promise((resolve) => setTimeout(resolve, 1100)); // a new `iat`, so a new token
    const [a, b] = await Promise.all([signer?.token(), signer?.token()]);
    expect(a).toBe(b);
    expect(a).not.toBe(token);
    expect(jwtClaims(a ?? '').sub).toBe('subject-ana');

    const leaving = tab();
    const out = new OAuthClient(config, { storage, location: leaving, now: () => clock });
    await out.signOut();
    expect(issuer.liveRefreshTokens()).toBe(0);
    expect(storage.map.size).toBe(0);
    const logout = new URL(leaving.visited[0] ?? '');
    expect(`${logout.origin}${logout.pathname}`).toBe(config.logoutEndpoint);
    expect(Object.fromEntries(logout.searchParams)).toEqual({
      client_id: LOCAL_AUDIENCE,
      logout_uri: `${PAGE}/`,
    });
    // The revoked refresh token no longer refreshes: the session ends on its own.
    let ended = false;
    reloaded.onSignedOut = () => {
      ended = true;
    };
    clock += 60 * 60_000;
    await expect(reloaded.token()).rejects.toMatchObject({ code: 'invalid_grant' });
    expect(ended).toBe(true);
  });

  it('refuses an answer whose state is not the one it sent, and a code exchanged without its verifier', async () => {
    const storage = memory();
    const browser = tab();
    const auth = new OAuthClient(config, { storage, location: browser });
    await auth.signIn();
    const back = new URL(await signInAs(browser.visited[0] ?? '', 'ana'));
    const forged = new URLSearchParams(back.search);
    forged.set('state', 'someone-elses');
    await expect(auth.completeSignIn(`?${forged}`)).rejects.toMatchObject({ code: 'invalid_state' });

    // The code without the verifier (someone who intercepted the redirect): the token endpoint refuses it.
    const stolen = await fetch(config.tokenEndpoint, {
      method: 'POST',
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        client_id: LOCAL_AUDIENCE,
        code: back.searchParams.get('code') ?? '',
        redirect_uri: `${PAGE}/`,
        code_verifier: 'x'.repeat(43),
      }),
    });
    expect(stolen.status).toBe(400);
    await expect(stolen.json()).resolves.toMatchObject({ error: 'invalid_grant' });
  });

  it('says what the managed login refused', async () => {
    const storage = memory();
    const browser = tab();
    const auth = new OAuthClient(config, { storage, location: browser });
    await auth.signIn();
    const { state } = JSON.parse(storage.getItem('chat.oauth.pending') ?? '{}') as { state: string };
    await expect(
      auth.completeSignIn(`?error=access_denied&error_description=User+cancelled&state=${state}`),
    ).rejects.toThrow(new OAuthError('access_denied', 'User cancelled'));
  });
});

describe('small things people read', () => {
  it('reads the claims the page shows (never trusted: the API verifies the token)', () => {
    expect(jwtClaims(jwt({ sub: 'u1', 'cognito:username': 'ana', exp: 5 }))).toEqual({
      sub: 'u1',
      username: 'ana',
      exp: 5,
    });
    expect(jwtClaims('not-a-token')).toEqual({});
  });

  it('says "1 message", "2 messages", "1,024 tokens"', () => {
    expect([plural(1, 'message'), plural(2, 'message'), plural(0, 'message'), plural(1024, 'token')]).toEqual(
      ['1 message', '2 messages', '0 messages', '1,024 tokens'],
    );
  });

  it('groups the list by the last activity: today, yesterday, the week, the month, then by month', () => {
    const now = new Date(2026, 11, 4, 15, 0);
    const at = (days: number, hour = 10) => new Date(2026, 11, 4 - days, hour).toISOString();
    const sessions = [0, 1, 3, 12, 45].map((days) => ({
      id: `s${days}`,
      title: `Chat ${days}`,
      title_source: 'auto' as const,
      created_at: at(days),
      updated_at: at(days),
      message_count: 2,
    }));
    expect(groupByDate(sessions, now).map((g) => [g.label, g.sessions.map((s) => s.id)])).toEqual([
      ['Today', ['s0']],
      ['Yesterday', ['s1']],
      ['Previous 7 days', ['s3']],
      ['Previous 30 days', ['s12']],
      [new Date(2026, 9, 20).toLocaleDateString([], { month: 'long', year: 'numeric' }), ['s45']],
    ]);
  });

  it('exports a conversation as Markdown and as JSON, from the stored messages', () => {
    const messages = [
      { id: 'm1', role: 'user' as const, text: 'What is an HSA?', created_at: '2026-12-04T10:00:00Z' },
      {
        id: 'm2',
        role: 'assistant' as const,
        text: '- A **health savings account**…',
        created_at: '2026-12-04T10:00:02Z',
        stop_reason: 'stopped',
        sources: [
          { id: 'c1', title: 'HSA', uri: 's3://kb/hsa.md', score: 0.8, excerpt: 'x' },
          { id: 'c2', title: 'HSA', uri: 's3://kb/hsa.md', score: 0.7, excerpt: 'y' },
        ],
      },
    ];
    expect(conversationMarkdown('HSA basics', messages)).toBe(
      [
        '# HSA basics',
        '',
        '## You (2026-12-04T10:00:00Z)',
        '',
        'What is an HSA?',
        '',
        '## Assistant (2026-12-04T10:00:02Z)',
        '',
        '- A **health savings account**…',
        '',
        '_Stopped before the end._',
        '',
        'Sources:',
        '- HSA (s3://kb/hsa.md)',
        '',
      ].join('\n'),
    );
    const json = JSON.parse(conversationJson({ id: 's1', title: 'HSA basics' }, messages, new Date(0)));
    expect(json).toEqual({
      id: 's1',
      title: 'HSA basics',
      exported_at: '1970-01-01T00:00:00.000Z',
      messages,
    });
    expect(fileNameOf('Roth vs. traditional IRA?', 'md')).toBe('roth-vs-traditional-ira.md');
    expect(fileNameOf('???', 'json')).toBe('conversation.json');
  });
});
