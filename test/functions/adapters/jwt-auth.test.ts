import { mkdtemp } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JwtAuth } from '../../../functions/adapters/jwt-auth.ts';
import {
  LOCAL_AUDIENCE,
  loadOrCreateSigningKey,
  mintToken,
  type OidcIssuer,
  startOidcIssuer,
} from '../../../local/emulators/oidc-issuer.ts';

const keyIn = async (name: string) =>
  loadOrCreateSigningKey(join(await mkdtemp(join(tmpdir(), 'jwt-auth-')), `${name}.json`));

const tamper = (token: string) => {
  const [header, payload, signature] = token.split('.');
  const claims = JSON.parse(Buffer.from(payload ?? '', 'base64url').toString());
  claims.sub = 'mallory';
  return `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}`;
};

let issuer: OidcIssuer;
let auth: JwtAuth;
let unknownKeys = 0;
/** A JWKS host that accepts connections and never answers, like an issuer with no route from a VPC. */
let hanging: Server;
const hangingSockets: Socket[] = [];
let hangingUri = '';

beforeAll(async () => {
  issuer = await startOidcIssuer(await keyIn('issuer'));
  hanging = createServer((socket) => hangingSockets.push(socket));
  await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
  const address = hanging.address();
  hangingUri = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/.well-known/jwks.json`;
  auth = new JwtAuth({
    issuer: issuer.issuer,
    audience: LOCAL_AUDIENCE,
    jwks: JSON.stringify(issuer.jwks),
    jwksUri: hangingUri,
    onUnknownKey: () => unknownKeys++,
  });
});
afterAll(async () => {
  for (const socket of hangingSockets) socket.destroy();
  await new Promise((resolve) => hanging.close(resolve));
  await issuer.close();
});

const rejected = { kind: 'unauthenticated', code: 'unauthorized' };

describe('JwtAuth with the JWKS delivered inline', () => {
  it('accepts a token signed by a known key and returns its subject', async () => {
    expect(await auth.userIdFrom(`Bearer ${await issuer.mint('bob')}`)).toBe('bob');
  });

  it('rejects a missing, malformed, tampered or wrong-client token as unauthenticated', async () => {
    await expect(auth.userIdFrom(undefined)).rejects.toMatchObject(rejected);
    await expect(auth.userIdFrom('Basic abc')).rejects.toMatchObject(rejected);
    await expect(auth.userIdFrom('Bearer not.a.jwt')).rejects.toMatchObject(rejected);
    await expect(auth.userIdFrom(`Bearer ${tamper(await issuer.mint('bob'))}`)).rejects.toMatchObject(
      rejected,
    );
    const wrongClient = await issuer.mint('eve', { audience: 'someone-else' });
    await expect(auth.userIdFrom(`Bearer ${wrongClient}`)).rejects.toMatchObject(rejected);
  });

  it('refuses a token with an unknown kid at once, without ever contacting the JWKS host, and counts it', async () => {
    const forged = await mintToken(await keyIn('forger'), { issuer: issuer.issuer, subject: 'mallory' });
    const before = unknownKeys;
    const started = performance.now();
    for (let i = 0; i < 5; i++) {
      await expect(auth.userIdFrom(`Bearer ${forged}`)).rejects.toMatchObject(rejected);
    }
    const perToken = (performance.now() - started) / 5;
    expect(unknownKeys - before).toBe(5);
    expect(hangingSockets).toHaveLength(0);
    // A fetch would take aws-jwt-verify's two 3 s attempts; this bound only separates "fetched" from "did not".
    expect(perToken).toBeLessThan(1000);
  });
});
