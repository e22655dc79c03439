import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  LOCAL_AUDIENCE,
  loadOrCreateSigningKey,
  type OidcIssuer,
  startOidcIssuer,
} from '../../../local/emulators/oidc-issuer.ts';

let issuer: OidcIssuer;

beforeAll(async () => {
  const key = await loadOrCreateSigningKey(join(await mkdtemp(join(tmpdir(), 'oidc-')), 'key.json'));
  issuer = await startOidcIssuer(key);
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

  it('gives concurrent first callers one and the same signing key, and leaves no temp file behind', async () => {
    const path = join(await mkdtemp(join(tmpdir(), 'oidc-')), 'nested', 'key.json');
    const keys = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateSigningKey(path)));
    const kids = new Set(keys.map((k) => k.privateJwk.kid));
    expect(kids.size).toBe(1);
    expect((await loadOrCreateSigningKey(path)).privateJwk.kid).toBe(keys[0]?.privateJwk.kid);
    expect(await readdir(dirname(path))).toEqual(['key.json']);
  });
});
