import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from 'jose';
import { type AnyRequest, type AnyResponse, type ListeningServer, listenH2cAndHttp1 } from './h2c-server.ts';

export const LOCAL_AUDIENCE = 'local-chat-client';

export interface SigningKey {
  privateJwk: JWK;
  publicJwk: JWK;
}

/**
 * The dev signing key, created once and kept in `.local/` so the token script and the stack agree. Processes
 * that start at once on a fresh clone (parallel test files, the benchmark and its stack) agree on one key:
 * each writes a private temp file and links it into place, which fails for all but the first.
 */
export async function loadOrCreateSigningKey(path: string): Promise<SigningKey> {
  const existing = await readSigningKey(path);
  if (existing) return existing;
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const kid = `local-${Date.now().toString(36)}`;
  const key: SigningKey = {
    privateJwk: { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' },
    publicJwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' },
  };
  await mkdir(dirname(path), { recursive: true });
  const temp = `${path}.${randomUUID()}.tmp`;
  await writeFile(temp, JSON.stringify(key), { mode: 0o600 });
  try {
    await link(temp, path);
    return key;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return JSON.parse(await readFile(path, 'utf8')) as SigningKey;
  } finally {
    await rm(temp, { force: true });
  }
}

/** The key at `path`; undefined when there is none, or only an unreadable one (then removed, to be made anew). */
async function readSigningKey(path: string): Promise<SigningKey | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    return JSON.parse(text) as SigningKey;
  } catch {
    await rm(path, { force: true });
    return undefined;
  }
}

export interface MintOptions {
  issuer: string;
  subject: string;
  audience?: string;
  expiresIn?: string;
  claims?: Record<string, unknown>;
}

export async function mintToken(key: SigningKey, options: MintOptions): Promise<string> {
  const signingKey = await importJWK(key.privateJwk, 'RS256');
  return new SignJWT({ token_use: 'id', ...options.claims })
    .setProtectedHeader({ alg: 'RS256', kid: key.publicJwk.kid ?? 'local', typ: 'JWT' })
    .setIssuer(options.issuer)
    .setSubject(options.subject)
    .setAudience(options.audience ?? LOCAL_AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? '12h')
    .sign(signingKey);
}

export interface OidcIssuer extends ListeningServer {
  issuer: string;
  jwksUri: string;
  jwks: { keys: JWK[] };
  mint(subject: string, options?: Omit<MintOptions, 'issuer' | 'subject'>): Promise<string>;
  /**
   * Managed login: the local users its sign-in form offers, username to token subject (tests add theirs).
   * Empty: the form takes any username, which becomes the subject.
   */
  users: Map<string, string>;
  /** Lifetime of the id and access tokens the /oauth2/token endpoint issues (Cognito's default: 1 h). */
  options: { tokenLifetimeSeconds: number };
  /** The refresh tokens issued and not revoked, for tests that check a sign-out revoked its own. */
  liveRefreshTokens(): number;
}

/** An authorization code waiting for its exchange (single use, 5 minutes, as Cognito). */
interface PendingCode {
  subject: string;
  username: string;
  clientId: string;
  redirectUri: string;
  challenge: string;
  scope: string;
  expiresAt: number;
}

const CODE_TTL_MS = 5 * 60_000;
const base64url = (bytes: Buffer) => bytes.toString('base64url');
const s256 = (verifier: string) => base64url(createHash('sha256').update(verifier).digest());
const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

async function readBody(req: AnyRequest): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

/** A redirect URI the local client may use: the page's own origin and `/`, on loopback (Cognito: its callback list). */
const allowedRedirect = (uri: string) => {
  try {
    const url = new URL(uri);
    return (
      url.protocol === 'http:' &&
      ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname) &&
      url.pathname === '/' &&
      !url.search &&
      !url.hash
    );
  } catch {
    return false;
  }
};

function send(res: AnyResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, {
    'content-type': 'application/json',
    'cache-control': 'no-store',
    'access-control-allow-origin': '*',
    ...headers,
  });
  res.end(JSON.stringify(body));
}

const oauthError = (res: AnyResponse, error: string, description: string, status = 400) =>
  send(res, status, { error, error_description: description });

/** The small sign-in page of the local managed login: pick a local user. */
function signInPage(params: URLSearchParams, users: string[], problem?: string): string {
  const hidden = [...params]
    .map(([name, value]) => `<input type="hidden" name="${escapeHtml(name)}" value="${escapeHtml(value)}">`)
    .join('');
  const who = users.length
    ? `<label>User <select name="username">${users.map((u) => `<option>${escapeHtml(u)}</option>`).join('')}</select></label>`
    : '<label>Username <input name="username" required autocomplete="username"></label>';
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Sign in (local)</title></head><body><main><h1>Sign in</h1><p>Local managed login: no password, pick a local user.</p>${problem ? `<p role="alert">${escapeHtml(problem)}</p>` : ''}<form method="post" action="/oauth2/authorize">${hidden}${who}<button type="submit">Sign in</button></form></main></body></html>`;
}

/**
 * A local OpenID issuer: serves discovery and the JWKS, signs dev tokens with the same key, and speaks
 * Cognito managed login's OAuth 2.0 endpoints (authorization code + PKCE S256, refresh, revoke, logout)
 * so the page signs in locally exactly as it does against a user pool domain.
 */
export async function startOidcIssuer(key: SigningKey, port = 0): Promise<OidcIssuer> {
  const jwks = { keys: [key.publicJwk] };
  let issuer = '';
  const users = new Map<string, string>();
  const options = { tokenLifetimeSeconds: 3600 };
  const codes = new Map<string, PendingCode>();
  const refreshTokens = new Map<string, { subject: string; username: string; clientId: string }>();

  const tokensFor = async (subject: string, username: string, clientId: string) => {
    const expiresIn = `${options.tokenLifetimeSeconds}s`;
    const [idToken, accessToken] = await Promise.all([
      mintToken(key, {
        issuer,
        subject,
        audience: clientId,
        expiresIn,
        claims: { 'cognito:username': username },
      }),
      mintToken(key, {
        issuer,
        subject,
        audience: clientId,
        expiresIn,
        claims: { token_use: 'access', client_id: clientId, username },
      }),
    ]);
    return {
      id_token: idToken,
      access_token: accessToken,
      token_type: 'Bearer',
      expires_in: options.tokenLifetimeSeconds,
    };
  };

  const authorize = async (req: AnyRequest, res: AnyResponse, query: URLSearchParams) => {
    const params = req.method === 'POST' ? new URLSearchParams(await readBody(req)) : query;
    const redirectUri = params.get('redirect_uri') ?? '';
    const clientId = params.get('client_id') ?? '';
    // Errors before the redirect URI is trusted are shown, never redirected (RFC 6749 4.1.2.1).
    if (clientId !== LOCAL_AUDIENCE || !allowedRedirect(redirectUri)) {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end('Unknown client_id or redirect_uri.');
      return;
    }
    const back = (extra: Record<string, string>) => {
      const url = new URL(redirectUri);
      for (const [name, value] of Object.entries(extra)) url.searchParams.set(name, value);
      const state = params.get('state');
      if (state) url.searchParams.set('state', state);
      res.writeHead(302, { location: url.toString() });
      res.end();
    };
    const challenge = params.get('code_challenge') ?? '';
    if (params.get('response_type') !== 'code') return back({ error: 'unsupported_response_type' });
    if (params.get('code_challenge_method') !== 'S256' || !/^[A-Za-z0-9_-]{43}$/.test(challenge)) {
      return back({ error: 'invalid_request', error_description: 'PKCE with S256 is required' });
    }
    const username = params.get('username')?.trim();
    if (req.method !== 'POST' || !username) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(signInPage(params, [...users.keys()]));
      return;
    }
    if (users.size > 0 && !users.has(username)) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(signInPage(params, [...users.keys()], 'Unknown user.'));
      return;
    }
    const code = base64url(randomBytes(24));
    codes.set(code, {
      subject: users.get(username) ?? username,
      username,
      clientId,
      redirectUri,
      challenge,
      scope: params.get('scope') ?? 'openid',
      expiresAt: Date.now() + CODE_TTL_MS,
    });
    back({ code });
  };

  const token = async (req: AnyRequest, res: AnyResponse) => {
    const form = new URLSearchParams(await readBody(req));
    const clientId = form.get('client_id') ?? '';
    if (clientId !== LOCAL_AUDIENCE) return oauthError(res, 'invalid_client', 'Unknown client_id.', 401);
    const grant = form.get('grant_type');
    if (grant === 'authorization_code') {
      const code = form.get('code') ?? '';
      const pending = codes.get(code);
      codes.delete(code);
      if (!pending || pending.expiresAt < Date.now() || pending.clientId !== clientId) {
        return oauthError(res, 'invalid_grant', 'The code is unknown, used or expired.');
      }
      if (pending.redirectUri !== form.get('redirect_uri')) {
        return oauthError(res, 'invalid_grant', 'redirect_uri differs from the authorization request.');
      }
      if (s256(form.get('code_verifier') ?? '') !== pending.challenge) {
        return oauthError(res, 'invalid_grant', 'The code_verifier does not match the code_challenge.');
      }
      const refreshToken = base64url(randomBytes(32));
      refreshTokens.set(refreshToken, { subject: pending.subject, username: pending.username, clientId });
      return send(res, 200, {
        ...(await tokensFor(pending.subject, pending.username, clientId)),
        refresh_token: refreshToken,
      });
    }
    if (grant === 'refresh_token') {
      const held = refreshTokens.get(form.get('refresh_token') ?? '');
      if (!held || held.clientId !== clientId) {
        return oauthError(res, 'invalid_grant', 'The refresh token is unknown or revoked.');
      }
      // As Cognito without rotation: new id and access tokens, the same refresh token.
      return send(res, 200, await tokensFor(held.subject, held.username, clientId));
    }
    return oauthError(
      res,
      'unsupported_grant_type',
      'grant_type must be authorization_code or refresh_token.',
    );
  };

  const revoke = async (req: AnyRequest, res: AnyResponse) => {
    const form = new URLSearchParams(await readBody(req));
    const held = refreshTokens.get(form.get('token') ?? '');
    if (form.get('client_id') !== LOCAL_AUDIENCE)
      return oauthError(res, 'invalid_client', 'Unknown client_id.', 401);
    if (held?.clientId === form.get('client_id')) refreshTokens.delete(form.get('token') ?? '');
    send(res, 200, {});
  };

  const server = await listenH2cAndHttp1((req, res) => {
    const url = new URL(req.url ?? '/', 'http://local');
    const path = url.pathname;
    const fail = (error: unknown) => {
      if (!res.writableEnded) oauthError(res, 'server_error', String(error), 500);
    };
    if (path === '/.well-known/jwks.json') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(jwks));
    } else if (path === '/.well-known/openid-configuration') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          issuer,
          jwks_uri: `${issuer}/.well-known/jwks.json`,
          authorization_endpoint: `${issuer}/oauth2/authorize`,
          token_endpoint: `${issuer}/oauth2/token`,
          revocation_endpoint: `${issuer}/oauth2/revoke`,
          end_session_endpoint: `${issuer}/logout`,
          response_types_supported: ['code'],
          code_challenge_methods_supported: ['S256'],
          grant_types_supported: ['authorization_code', 'refresh_token'],
          id_token_signing_alg_values_supported: ['RS256'],
        }),
      );
    } else if (path === '/oauth2/authorize' && (req.method === 'GET' || req.method === 'POST')) {
      authorize(req, res, url.searchParams).catch(fail);
    } else if (req.method === 'OPTIONS' && (path === '/oauth2/token' || path === '/oauth2/revoke')) {
      res.writeHead(204, {
        'access-control-allow-origin': '*',
        'access-control-allow-methods': 'POST',
        'access-control-allow-headers': 'content-type',
      });
      res.end();
    } else if (path === '/oauth2/token' && req.method === 'POST') {
      token(req, res).catch(fail);
    } else if (path === '/oauth2/revoke' && req.method === 'POST') {
      revoke(req, res).catch(fail);
    } else if (path === '/logout') {
      const logoutUri = url.searchParams.get('logout_uri') ?? '';
      if (url.searchParams.get('client_id') !== LOCAL_AUDIENCE || !allowedRedirect(logoutUri)) {
        res.writeHead(400, { 'content-type': 'text/plain' });
        res.end('Unknown client_id or logout_uri.');
        return;
      }
      res.writeHead(302, { location: logoutUri });
      res.end();
    } else {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ message: 'Not found' }));
    }
  }, port);
  issuer = server.url;
  return {
    ...server,
    issuer,
    jwksUri: `${issuer}/.well-known/jwks.json`,
    jwks,
    mint: (subject, mintOptions) => mintToken(key, { ...mintOptions, issuer, subject }),
    users,
    options,
    liveRefreshTokens: () => refreshTokens.size,
  };
}
