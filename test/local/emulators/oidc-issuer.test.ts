import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JwtAuth } from '../../../functions/adapters/jwt-auth.ts';
import {
  LOCAL_AUDIENCE,
  loadOrCreateSigningKey,
  type OidcIssuer,
  startOidcIssuer,
} from '../../../local/emulators/oidc-issuer.ts';

let issuer: OidcIssuer;
let auth: JwtAuth;

beforeAll(async () => {
  const key = await loadOrCreateSigningKey(join(await mkdtemp(join(tmpdir(), 'oidc-')), 'key.json'));
  issuer = await startOidcIssuer(key);
  auth = new JwtAuth({ issuer: issuer.issuer, audience: LOCAL_AUDIENCE, jwks: JSON.stringify(issuer.jwks) });
});
afterAll(() => issuer.close());

const tamper = (token: string) => {
  const [header, payload, signature] = token.split('.');
  const claims = JSON.parse(Buffer.from(payload ?? '', 'base64url').toString());
  claims.sub = 'mallory';
  return `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}`;
};

describe('local OIDC issuer', () => {
  it('serves a JWKS over HTTP that verifies a minted token, and rejects a tampered one', async () => {
    const jwks = createRemoteJWKSet(new URL(issuer.jwksUri));
    const token = await issuer.mint('alice');
    const { payload } = await jwtVerify(token, jwks, { issuer: issuer.issuer, audience: LOCAL_AUDIENCE });
    expect(payload.sub).toBe('alice');
    await expect(jwtVerify(tamper(token), jwks, { issuer: issuer.issuer })).rejects.toThrow();
  });

  it('verifies through the handler auth (aws-jwt-verify) the same way', async () => {
    expect(await auth.userIdFrom(`Bearer ${await issuer.mint('bob')}`)).toBe('bob');
    await expect(auth.userIdFrom(`Bearer ${tamper(await issuer.mint('bob'))}`)).rejects.toMatchObject({
      status: 401,
    });
    await expect(auth.userIdFrom(undefined)).rejects.toMatchObject({ status: 401 });
    await expect(auth.userIdFrom('Basic abc')).rejects.toMatchObject({ status: 401 });
  });

  it('rejects a token for another client or another issuer', async () => {
    const other = await startOidcIssuer(
      await loadOrCreateSigningKey(join(await mkdtemp(join(tmpdir(), 'oidc-')), 'k.json')),
    );
    try {
      await expect(auth.userIdFrom(`Bearer ${await other.mint('eve')}`)).rejects.toMatchObject({
        status: 401,
      });
      const wrongClient = await issuer.mint('eve', { audience: 'someone-else' });
      await expect(auth.userIdFrom(`Bearer ${wrongClient}`)).rejects.toMatchObject({ status: 401 });
    } finally {
      await other.close();
    }
  });
});
