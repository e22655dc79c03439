import type { PageAuthConfig, PageConfig } from '../../functions/contracts/page-config.ts';

/**
 * The page's runtime configuration, read from /config.json at start (never built in, so one build serves
 * every stage). Its shape is functions/contracts/page-config.ts: `npm run dev` serves the dev form (a
 * token per local user) or the oauth form against the local OIDC emulator; a deployment writes the oauth
 * form for the user pool's managed login.
 */
export type { PageConfig };
export type OAuthConfig = Extract<PageAuthConfig, { mode: 'oauth' }>;

const SHAPE =
  '{"apiUrl": string, "auth": {"mode":"dev","users":{"<name>":"<token>"}} | {"mode":"oauth","clientId":string,"authorizeEndpoint":url,"tokenEndpoint":url,"revokeEndpoint":url,"logoutEndpoint":url,"scopes":string[]}}';

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const isText = (value: unknown): value is string => typeof value === 'string' && value.trim() !== '';
const isUrl = (value: unknown): value is string => isText(value) && /^https?:\/\/[^/\s]+/.test(value);
const ENDPOINTS = ['authorizeEndpoint', 'tokenEndpoint', 'revokeEndpoint', 'logoutEndpoint'] as const;

/** Checks the shape and says what is wrong, so a bad deployment shows a sentence, not a blank page. */
export function parseConfig(raw: unknown): PageConfig {
  const fail = (what: string): never => {
    throw new Error(`config.json: ${what}. Expected ${SHAPE}.`);
  };
  if (!isRecord(raw)) return fail('not a JSON object');
  const { apiUrl, auth } = raw;
  if (!isText(apiUrl) || !/^https?:\/\//.test(apiUrl)) return fail('apiUrl must be an http(s) URL');
  if (!isRecord(auth)) return fail('auth is missing');
  const base = apiUrl.replace(/\/+$/, '');
  if (auth.mode === 'dev') {
    const users = auth.users;
    if (!isRecord(users) || Object.keys(users).length === 0) return fail('auth.users must name a user');
    const tokens: Record<string, string> = {};
    for (const [name, token] of Object.entries(users)) {
      if (!isText(token)) return fail(`auth.users.${name} must be a token`);
      tokens[name] = token;
    }
    return { apiUrl: base, auth: { mode: 'dev', users: tokens } };
  }
  if (auth.mode === 'oauth') {
    if (!isText(auth.clientId)) return fail('auth.clientId must be the app client id');
    for (const name of ENDPOINTS) {
      if (!isUrl(auth[name])) return fail(`auth.${name} must be an http(s) URL`);
    }
    const scopes = auth.scopes;
    if (!Array.isArray(scopes) || !scopes.every(isText) || !scopes.includes('openid')) {
      return fail('auth.scopes must be a list of scopes with "openid"');
    }
    return {
      apiUrl: base,
      auth: {
        mode: 'oauth',
        clientId: auth.clientId,
        authorizeEndpoint: auth.authorizeEndpoint as string,
        tokenEndpoint: auth.tokenEndpoint as string,
        revokeEndpoint: auth.revokeEndpoint as string,
        logoutEndpoint: auth.logoutEndpoint as string,
        scopes: [...scopes],
      },
    };
  }
  return fail('auth.mode must be "dev" or "oauth"');
}

export async function loadConfig(url = '/config.json'): Promise<PageConfig> {
  const response = await fetch(url, { cache: 'no-store' });
  if (!response.ok) throw new Error(`config.json: ${url} answered ${response.status}.`);
  return parseConfig(await response.json());
}
