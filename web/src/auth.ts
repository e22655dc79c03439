import type { AuthConfig } from './config.ts';

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

interface CognitoTokens {
  idToken: string;
  refreshToken: string;
  /** Epoch ms at which the id token expires. */
  expiresAt: number;
}

export type SignInResult =
  | { kind: 'signed-in'; signer: Signer }
  | { kind: 'new-password-required'; username: string; session: string };

/** An error Cognito returned, with its message (for example "Incorrect username or password."). */
export class CognitoError extends Error {
  readonly type: string;
  constructor(type: string, message: string) {
    super(message);
    this.name = 'CognitoError';
    this.type = type;
  }
}

const STORAGE_KEY = 'chat.cognito';
/** Refresh when less than this is left, so no request ever carries a token about to expire. */
const REFRESH_MARGIN_MS = 5 * 60_000;

interface CognitoOptions {
  storage?: Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>;
  fetch?: typeof fetch;
  now?: () => number;
}

/**
 * Cognito sign-in with username and password (InitiateAuth USER_PASSWORD_AUTH, the app client has no
 * secret), the first-sign-in new-password challenge, and REFRESH_TOKEN_AUTH before the id token expires.
 * Plain `fetch` to the user pool's JSON API: the page needs three calls, not an SDK. Tokens live in
 * sessionStorage: they survive a reload (so a reload mid-answer resumes), not the closing of the tab.
 */
export class CognitoAuth {
  readonly #config: Extract<AuthConfig, { mode: 'cognito' }>;
  readonly #storage: NonNullable<CognitoOptions['storage']>;
  readonly #fetch: typeof fetch;
  readonly #now: () => number;
  #tokens: CognitoTokens | undefined;
  #refreshing: Promise<string> | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Called when the session ends on its own (the refresh token was refused). */
  onSignedOut: () => void = () => undefined;

  constructor(config: Extract<AuthConfig, { mode: 'cognito' }>, options: CognitoOptions = {}) {
    this.#config = config;
    this.#storage = options.storage ?? sessionStorage;
    this.#fetch = options.fetch ?? ((...args) => fetch(...args));
    this.#now = options.now ?? Date.now;
    const stored = this.#storage.getItem(STORAGE_KEY);
    if (stored) {
      try {
        this.#tokens = JSON.parse(stored) as CognitoTokens;
      } catch {
        this.#storage.removeItem(STORAGE_KEY);
      }
    }
  }

  /** The signed-in session kept from before a reload, if any. */
  restore(): Signer | undefined {
    if (!this.#tokens) return undefined;
    this.#schedule();
    return this.#signer();
  }

  async signIn(username: string, password: string): Promise<SignInResult> {
    const result = await this.#call('InitiateAuth', {
      AuthFlow: 'USER_PASSWORD_AUTH',
      ClientId: this.#config.userPoolClientId,
      AuthParameters: { USERNAME: username, PASSWORD: password },
    });
    return this.#outcome(result, username);
  }

  /** Answers the NEW_PASSWORD_REQUIRED challenge of a user an administrator created. */
  async setNewPassword(username: string, newPassword: string, session: string): Promise<SignInResult> {
    const result = await this.#call('RespondToAuthChallenge', {
      ChallengeName: 'NEW_PASSWORD_REQUIRED',
      ClientId: this.#config.userPoolClientId,
      Session: session,
      ChallengeResponses: { USERNAME: username, NEW_PASSWORD: newPassword },
    });
    return this.#outcome(result, username);
  }

  signOut(): void {
    this.#tokens = undefined;
    this.#storage.removeItem(STORAGE_KEY);
    if (this.#timer) clearTimeout(this.#timer);
  }

  /** A valid id token: the kept one, or a fresh one when it expires within the margin. */
  async token(): Promise<string> {
    const tokens = this.#tokens;
    if (!tokens) throw new CognitoError('NotSignedIn', 'Sign in first.');
    if (tokens.expiresAt - this.#now() > REFRESH_MARGIN_MS) return tokens.idToken;
    this.#refreshing ??= this.#refresh().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  async #refresh(): Promise<string> {
    const refreshToken = this.#tokens?.refreshToken;
    if (!refreshToken) throw new CognitoError('NotSignedIn', 'Sign in first.');
    try {
      const result = await this.#call('InitiateAuth', {
        AuthFlow: 'REFRESH_TOKEN_AUTH',
        ClientId: this.#config.userPoolClientId,
        AuthParameters: { REFRESH_TOKEN: refreshToken },
      });
      const auth = result.AuthenticationResult as Record<string, unknown> | undefined;
      if (typeof auth?.IdToken !== 'string') throw new CognitoError('NoToken', 'Cognito sent no token.');
      // A refresh does not return a new refresh token unless rotation is on: keep the old one.
      this.#keep(auth, refreshToken);
      return auth.IdToken;
    } catch (error) {
      if (error instanceof CognitoError && error.type === 'NotAuthorizedException') {
        this.signOut();
        this.onSignedOut();
      }
      throw error;
    }
  }

  #outcome(result: Record<string, unknown>, username: string): SignInResult {
    if (result.ChallengeName === 'NEW_PASSWORD_REQUIRED' && typeof result.Session === 'string') {
      return { kind: 'new-password-required', username, session: result.Session };
    }
    if (typeof result.ChallengeName === 'string') {
      throw new CognitoError(
        'UnsupportedChallenge',
        `This page cannot answer the ${result.ChallengeName} challenge; ask an administrator.`,
      );
    }
    const auth = result.AuthenticationResult as Record<string, unknown> | undefined;
    if (typeof auth?.IdToken !== 'string' || typeof auth.RefreshToken !== 'string') {
      throw new CognitoError('NoToken', 'Cognito sent no token.');
    }
    this.#keep(auth, auth.RefreshToken);
    return { kind: 'signed-in', signer: this.#signer() };
  }

  #keep(auth: Record<string, unknown>, refreshToken: string): void {
    const idToken = auth.IdToken as string;
    const exp = jwtClaims(idToken).exp;
    const lifetimeMs = typeof auth.ExpiresIn === 'number' ? auth.ExpiresIn * 1000 : 3600_000;
    this.#tokens = {
      idToken,
      refreshToken,
      expiresAt: exp ? exp * 1000 : this.#now() + lifetimeMs,
    };
    this.#storage.setItem(STORAGE_KEY, JSON.stringify(this.#tokens));
    this.#schedule();
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

  async #call(action: string, body: unknown): Promise<Record<string, unknown>> {
    const response = await this.#fetch(`https://cognito-idp.${this.#config.region}.amazonaws.com/`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-amz-json-1.1',
        'x-amz-target': `AWSCognitoIdentityProviderService.${action}`,
      },
      body: JSON.stringify(body),
    });
    const json = (await response.json().catch(() => ({}))) as Record<string, unknown>;
    if (!response.ok) {
      const type = String(json.__type ?? 'Error')
        .split('#')
        .pop() as string;
      throw new CognitoError(
        type,
        String(json.message ?? json.Message ?? `Sign-in failed (${response.status}).`),
      );
    }
    return json;
  }
}
