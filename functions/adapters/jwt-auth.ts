import { JwtVerifier } from 'aws-jwt-verify';
import { type Jwks, SimpleJwksCache } from 'aws-jwt-verify/jwk';
import { decomposeUnverifiedJwt } from 'aws-jwt-verify/jwt';
import { RequestRejected } from '../core/errors.ts';

export interface JwtAuthOptions {
  issuer: string;
  audience: string;
  jwksUri?: string | undefined;
  /** The JWKS as JSON; delivered at deploy time so a function without internet access can verify. */
  jwks?: string | undefined;
  /** Called when a token names a key the inline JWKS does not hold (forged, or keys rotated since deploy). */
  onUnknownKey?: () => void;
}

const MAX_CLOCK_SKEW_SECONDS = 300;

/**
 * The subject becomes part of every storage key: only characters that can never act as a key
 * separator (`#`, `:`, `{`) are let through. Cognito's subs are UUIDs.
 */
const SUBJECT = /^[A-Za-z0-9._@-]{1,128}$/;

const unauthenticated = (message: string) => new RequestRejected('unauthenticated', 'unauthorized', message);

/**
 * Verifies `Authorization: Bearer <JWT>` the same way in AWS (Cognito) and locally (the dev issuer):
 * signature against the issuer's JWKS, issuer, expiry, and the app client as `aud` (ID tokens) or
 * `client_id` (access tokens). With an inline JWKS no request ever fetches keys: aws-jwt-verify would
 * fetch the JWKS URI for an unknown `kid` (two 3 s attempts), which a forged token could trigger at will.
 */
export class JwtAuth {
  readonly #verifier;
  readonly #inlineKids: Set<string> | undefined;
  readonly #onUnknownKey: () => void;

  constructor(options: JwtAuthOptions) {
    const inline = options.jwks ? (JSON.parse(options.jwks) as Jwks) : undefined;
    const neverFetch = {
      fetch: () => Promise.reject(new Error('keys are delivered at deploy time; no fetch during a request')),
    };
    this.#verifier = JwtVerifier.create(
      {
        issuer: options.issuer,
        audience: null,
        ...(options.jwksUri ? { jwksUri: options.jwksUri } : {}),
        customJwtCheck: ({ payload }) => {
          // An ID token names the client in `aud`, an access token in `client_id`; any other use is refused.
          const client =
            payload.token_use === 'id'
              ? [payload.aud].flat().includes(options.audience)
              : payload.token_use === 'access' && payload.client_id === options.audience;
          if (!client) throw new Error('Token is not an ID or access token for this client');
          // A token that never expires is a mis-minted one; one issued in the future, too.
          if (typeof payload.exp !== 'number') throw new Error('Token has no expiry');
          if (typeof payload.iat === 'number' && payload.iat > Date.now() / 1000 + MAX_CLOCK_SKEW_SECONDS) {
            throw new Error('Token is issued in the future');
          }
        },
      },
      inline ? { jwksCache: new SimpleJwksCache({ fetcher: neverFetch }) } : undefined,
    );
    if (inline) {
      this.#verifier.cacheJwks(inline);
      this.#inlineKids = new Set(inline.keys.flatMap((key) => (key.kid ? [key.kid] : [])));
    }
    this.#onUnknownKey = options.onUnknownKey ?? (() => undefined);
  }

  /** Fetches the JWKS ahead of the first request (during init) when it was not delivered inline. */
  async warm(): Promise<void> {
    if (!this.#inlineKids) await this.#verifier.hydrate();
  }

  async userIdFrom(authorization: string | undefined): Promise<string> {
    const token = /^Bearer\s+(\S+)$/i.exec(authorization ?? '')?.[1];
    if (!token) throw unauthenticated('A bearer token is required.');
    if (this.#inlineKids) {
      let kid: unknown;
      try {
        kid = decomposeUnverifiedJwt(token).header.kid;
      } catch {
        throw unauthenticated('The token is invalid or expired.');
      }
      if (typeof kid !== 'string' || !this.#inlineKids.has(kid)) {
        this.#onUnknownKey();
        throw unauthenticated('The token is invalid or expired.');
      }
    }
    try {
      const payload = await this.#verifier.verify(token);
      if (typeof payload.sub !== 'string' || !SUBJECT.test(payload.sub)) {
        throw new Error('Token has no usable subject');
      }
      return payload.sub;
    } catch {
      throw unauthenticated('The token is invalid or expired.');
    }
  }
}
