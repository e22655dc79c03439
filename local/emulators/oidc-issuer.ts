import { randomUUID } from 'node:crypto';
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from 'jose';
import { type ListeningServer, listenH2cAndHttp1 } from './h2c-server.ts';

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
}

/** A local OpenID issuer: serves discovery and the JWKS, and signs dev tokens with the same key. */
export async function startOidcIssuer(key: SigningKey, port = 0): Promise<OidcIssuer> {
  const jwks = { keys: [key.publicJwk] };
  let issuer = '';
  const server = await listenH2cAndHttp1((req, res) => {
    const path = req.url?.split('?')[0];
    if (path === '/.well-known/jwks.json') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(jwks));
    } else if (path === '/.well-known/openid-configuration') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          issuer,
          jwks_uri: `${issuer}/.well-known/jwks.json`,
          id_token_signing_alg_values_supported: ['RS256'],
        }),
      );
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
    mint: (subject, options) => mintToken(key, { ...options, issuer, subject }),
  };
}
