import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadOrCreateSigningKey, mintToken } from '../emulators/oidc-issuer.ts';

const STATE_DIR = join(import.meta.dirname, '..', '..', '.local');
const { values } = parseArgs({
  options: {
    user: { type: 'string', default: 'demo-user' },
    expires: { type: 'string', default: '12h' },
  },
});

/** The issuer of the running dev stack; the default port when it has not run yet. */
async function issuerUrl(): Promise<string> {
  try {
    const endpoints = JSON.parse(await readFile(join(STATE_DIR, 'endpoints.json'), 'utf8')) as {
      issuer: string;
    };
    return endpoints.issuer;
  } catch {
    return 'http://127.0.0.1:3003';
  }
}

const key = await loadOrCreateSigningKey(join(STATE_DIR, 'dev-signing-key.json'));
console.log(
  await mintToken(key, { issuer: await issuerUrl(), subject: values.user, expiresIn: values.expires }),
);
