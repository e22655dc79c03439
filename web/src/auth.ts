import type { OAuthConfig } from './config.ts';

/** Who is signed in, and a bearer token for each request (fresh: refreshed before it expires). */
export interface Signer {
  readonly user: string;
  token(): Promise<string>;
}

/** The claims the page reads from a JWT (never trusted for anything: the API verifies the token). */
export function jwtClaims(token: string): { sub?: string; exp?: number; username?: string; email?: string } {
  const payload = token.split('.')[1];
  if (!payload) return {};
  try {
    const json = atob(payload.replaceAll('-', '+').replaceAll('_', '/'));
    const claims = JSON.parse(json) as Record<string, unknown>;
    const text = (key: string) => (typeof claims[key] === 'string' ? (claims[key] as string) : undefined);
    return {
      ...(text('sub') ? { sub: text('sub') } : {}),
      ...(typeof claims.exp === 'number' ? { exp: claims.exp } : {}),
      ...(text('cognito:username') || text('username')
        ? { username: text('cognito:username') ?? text('username') }
        : {}),
      ...(text('email') ? { email: text('email') } : {}),
    };
  } catch {
    return {};
  }
}

/** Local: one dev token per local user, handed out by `npm run dev` in config.json. */
export function devSigner(user: string, token: string): Signer {
  return { user, token: async () => token };
}
interface Tokens {
  idToken: string;
  /** Absent once refreshing is no longer possible (then the session ends with the id token). */
  refreshToken: string | undefined;
  /** Epoch ms at which the id token expires. */
  expiresAt: number;
}

/** What the sign-in redirect must find again when it comes back: the PKCE verifier and the state. */
interface PendingSignIn {
  verifier: string;
  state: string;
  /** The address fragment to reopen after sign-in (`#/c/<id>`). */
  returnTo: string;
}

/** A refusal from the sign-in service, with its OAuth error code (`invalid_grant`, `access_denied` …). */
export class OAuthError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'OAuthError';
    this.code = code;
  }
}

const TOKENS_KEY = 'chat.oauth.tokens';
const PENDING_KEY = 'chat.oauth.pending';
/** Refresh when less than this is left, so no request ever carries a token about to expire. */
const REFRESH_MARGIN_MS = 5 * 60_000;

const base64url = (bytes: Uint8Array) =>
  btoa(String.fromCharCode(...bytes))
    .replaceAll('+', '-')
    .replaceAll('/', '_')
    .replace(/=+$/, '');

/** A random string of URL-safe characters (32 bytes: a 43-character PKCE verifier, RFC 7636). */
const randomText = (bytes = 32) => base64url(crypto.getRandomValues(new Uint8Array(bytes)));

/** The S256 code challenge of a verifier: base64url(SHA-256(verifier)). */
async function codeChallenge(verifier: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

interface OAuthOptions {
  storage?: Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>;
  fetch?: typeof fetch;
  now?: () => number;
  /** Where the browser is and how it leaves (the sign-in and logout redirects). */
  location?: { readonly origin: string; readonly hash: string; assign(url: string): void };
}

/**
 * Sign-in through Cognito's managed login (or the local OIDC emulator, which serves the same endpoints):
 * OAuth 2.0 authorization code with PKCE (S256) and a state check, the code exchanged for tokens at the
 * token endpoint (a public client: no secret), the id token refreshed before it expires.
 *
 * Where the tokens live: sessionStorage, so a reload (mid-answer, it resumes) keeps the session, and
 * closing the tab forgets it. Signing out revokes the refresh token at the revoke endpoint, forgets
 * everything, and ends the managed-login session at the logout endpoint.
 */
export class OAuthClient {
  readonly #config: OAuthConfig;
  readonly #storage: NonNullable<OAuthOptions['storage']>;
  readonly #fetch: typeof fetch;
  readonly #now: () => number;
  readonly #location: NonNullable<OAuthOptions['location']>;
  #tokens: Tokens | undefined;
  #refreshing: Promise<string> | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Called when the session ends on its own (the refresh token was refused). */
  onSignedOut: () => void = () => undefined;

  constructor(config: OAuthConfig, options: OAuthOptions = {}) {
    this.#config = config;
    this.#storage = options.storage ?? sessionStorage;
    this.#fetch = options.fetch ?? ((...args) => fetch(...args));
    this.#now = options.now ?? Date.now;
    this.#location = options.location ?? window.location;
    const stored = this.#storage.getItem(TOKENS_KEY);
    if (stored) {
      try {
        this.#tokens = JSON.parse(stored) as Tokens;
      } catch {
        this.#storage.removeItem(TOKENS_KEY);
      }
    }
  }

  /** The page's own origin and `/`: what the app client lists as its callback and sign-out URL. */
  get redirectUri(): string {
    return `${this.#location.origin}/`;
  }

  /** The signed-in session kept from before a reload, if any. */
  restore(): Signer | undefined {
    if (!this.#tokens) return undefined;
    this.#schedule();
    return this.#signer();
  }

  /** Leaves for the managed login page; it comes back to the page with `?code=…&state=…`. */
  async signIn(): Promise<void> {
    const pending: PendingSignIn = {
      verifier: randomText(),
      state: randomText(16),
      returnTo: this.#location.hash,
    };
    this.#storage.setItem(PENDING_KEY, JSON.stringify(pending));
    const url = new URL(this.#config.authorizeEndpoint);
    url.search = new URLSearchParams({
      response_type: 'code',
      client_id: this.#config.clientId,
      redirect_uri: this.redirectUri,
      scope: this.#config.scopes.join(' '),
      state: pending.state,
      code_challenge: await codeChallenge(pending.verifier),
      code_challenge_method: 'S256',
    }).toString();
    this.#location.assign(url.toString());
  }

  /**
   * On the way back from the managed login: checks the state, exchanges the code (with the verifier) for
   * tokens. `undefined` when the address carries no sign-in answer. Returns where to go next too.
   */
  async completeSignIn(search: string): Promise<{ signer: Signer; returnTo: string } | undefined> {
    const params = new URLSearchParams(search);
    const code = params.get('code');
    const error = params.get('error');
    if (!code && !error) return undefined;
    const stored = this.#storage.getItem(PENDING_KEY);
    this.#storage.removeItem(PENDING_KEY);
    const pending = stored ? (JSON.parse(stored) as PendingSignIn) : undefined;
    if (!pending || params.get('state') !== pending.state) {
      throw new OAuthError(
        'invalid_state',
        'The sign-in answer does not match a sign-in from this tab. Sign in again.',
      );
    }
    if (error || !code) {
      throw new OAuthError(
        error ?? 'invalid_request',
        params.get('error_description') ?? 'Sign-in was refused.',
      );
    }
    const result = await this.#post(this.#config.tokenEndpoint, {
      grant_type: 'authorization_code',
      client_id: this.#config.clientId,
      code,
      redirect_uri: this.redirectUri,
      code_verifier: pending.verifier,
    });
    if (typeof result.refresh_token !== 'string')
      throw new OAuthError('no_token', 'The sign-in service sent no refresh token.');
    this.#keep(result, result.refresh_token);
    return { signer: this.#signer(), returnTo: pending.returnTo };
  }

  /** Revokes the refresh token, forgets the session here, and ends it at the managed login. */
  async signOut(): Promise<void> {
    const refreshToken = this.#tokens?.refreshToken;
    this.#forget();
    if (refreshToken) {
      await this.#post(this.#config.revokeEndpoint, {
        token: refreshToken,
        client_id: this.#config.clientId,
      }).catch(() => undefined);
    }
    const url = new URL(this.#config.logoutEndpoint);
    url.search = new URLSearchParams({
      client_id: this.#config.clientId,
      logout_uri: this.redirectUri,
    }).toString();
    this.#location.assign(url.toString());
  }

  /** A valid id token: the kept one, or a fresh one when it expires within the margin. */
  async token(): Promise<string> {
    const tokens = this.#tokens;
    if (!tokens) throw new OAuthError('not_signed_in', 'Sign in first.');
    if (tokens.expiresAt - this.#now() > REFRESH_MARGIN_MS) return tokens.idToken;
    this.#refreshing ??= this.#refresh().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  async #refresh(): Promise<string> {
    const refreshToken = this.#tokens?.refreshToken;
    if (!refreshToken) throw new OAuthError('not_signed_in', 'Sign in first.');
    try {
      const result = await this.#post(this.#config.tokenEndpoint, {
        grant_type: 'refresh_token',
        client_id: this.#config.clientId,
        refresh_token: refreshToken,
      });
      // Without rotation the answer has no new refresh token: keep the old one.
      this.#keep(result, typeof result.refresh_token === 'string' ? result.refresh_token : refreshToken);
      return this.#tokens?.idToken ?? '';
    } catch (error) {
      if (error instanceof OAuthError && error.code === 'invalid_grant') {
        this.#forget();
        this.onSignedOut();
      }
      throw error;
    }
  }

  #keep(result: Record<string, unknown>, refreshToken: string): void {
    if (typeof result.id_token !== 'string')
      throw new OAuthError('no_token', 'The sign-in service sent no id token.');
    const exp = jwtClaims(result.id_token).exp;
    const lifetimeMs = typeof result.expires_in === 'number' ? result.expires_in * 1000 : 3600_000;
    this.#tokens = {
      idToken: result.id_token,
      refreshToken,
      expiresAt: exp ? exp * 1000 : this.#now() + lifetimeMs,
    };
    this.#storage.setItem(TOKENS_KEY, JSON.stringify(this.#tokens));
    this.#schedule();
  }

  #forget(): void {
    this.#tokens = undefined;
    this.#storage.removeItem(TOKENS_KEY);
    this.#storage.removeItem(PENDING_KEY);
    if (this.#timer) clearTimeout(this.#timer);
  }

  /** Refreshes ahead of time too, so a tab left open keeps a valid token. */
  #schedule(): void {
    if (this.#timer) clearTimeout(this.#timer);
    if (!this.#tokens) return;
    const due = Math.max(0, this.#tokens.expiresAt - REFRESH_MARGIN_MS - this.#now());
    this.#timer = setTimeout(() => {
      this.token().catch(() => undefined);
    }, due);
  }

  #signer(): Signer {
    const claims = jwtClaims(this.#tokens?.idToken ?? '');
    return { user: claims.username ?? claims.email ?? claims.sub ?? 'signed in', token: () => this.token() };
  }

  /** A form POST, as the OAuth endpoints take it (a public client: no Authorization header). */
  async #post(url: string, form: Record<string, string>): Promise<Record<string, unknown>> {
    const response = await this.#fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form).toString(),
    });
    const json = (await response.json().catch(() => ({}))) as Record<string, unknown>;
    if (!response.ok) {
      throw new OAuthError(
        typeof json.error === 'string' ? json.error : `http_${response.status}`,
        typeof json.error_description === 'string'
          ? json.error_description
          : `Sign-in failed (${response.status}).`,
      );
    }
    return json;
  }
}
