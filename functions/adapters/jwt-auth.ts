import { JwtVerifier } from 'aws-jwt-verify';
import type { JwksCache } from 'aws-jwt-verify/jwk';
import { HttpError } from '../core/request.ts';

export interface JwtAuthOptions {
  issuer: string;
  audience: string;
  jwksUri?: string | undefined;
  /** The JWKS as JSON; preloaded so a function without internet access can verify. */
  jwks?: string | undefined;
}

/**
 * Verifies `Authorization: Bearer <JWT>` the same way in AWS (Cognito) and locally (the dev issuer):
 * signature against the issuer's JWKS, issuer, expiry, and the app client as `aud` (ID tokens) or
 * `client_id` (access tokens).
 */
export class JwtAuth {
  readonly #verifier;

  constructor(options: JwtAuthOptions, jwksCache?: JwksCache) {
    this.#verifier = JwtVerifier.create(
      {
        issuer: options.issuer,
        audience: null,
        ...(options.jwksUri ? { jwksUri: options.jwksUri } : {}),
        customJwtCheck: ({ payload }) => {
          const clients = [payload.aud, payload.client_id].flat();
          if (!clients.includes(options.audience)) throw new Error('Token is not for this client');
        },
      },
      jwksCache ? { jwksCache } : undefined,
    );
    if (options.jwks) this.#verifier.cacheJwks(JSON.parse(options.jwks));
  }

  /** Fetches the JWKS ahead of the first request (during init) when it was not delivered inline. */
  async warm(): Promise<void> {
    await this.#verifier.hydrate();
  }

  async userIdFrom(authorization: string | undefined): Promise<string> {
    const token = /^Bearer\s+(\S+)$/i.exec(authorization ?? '')?.[1];
    if (!token) throw new HttpError(401, 'unauthorized', 'A bearer token is required.');
    try {
      const payload = await this.#verifier.verify(token);
      if (!payload.sub) throw new Error('Token has no subject');
      return payload.sub;
    } catch {
      throw new HttpError(401, 'unauthorized', 'The token is invalid or expired.');
    }
  }
}
