/**
 * The page's runtime configuration, read from /config.json at start (never built in, so one build serves
 * every stage). Locally `npm run dev` serves it with a dev token per local user; a deployment (`-c
 * chat:web=true`) writes it beside the built page with the Cognito user pool to sign in against.
 */
export type AuthConfig =
  | { mode: 'dev'; users: Record<string, string> }
  | { mode: 'cognito'; region: string; userPoolId: string; userPoolClientId: string };

export interface PageConfig {
  /** The Function URL (or its custom domain), without a trailing slash. */
  apiUrl: string;
  auth: AuthConfig;
}

const SHAPE =
  '{"apiUrl": string, "auth": {"mode":"dev","users":{"<name>":"<token>"}} | {"mode":"cognito","region":string,"userPoolId":string,"userPoolClientId":string}}';

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const isText = (value: unknown): value is string => typeof value === 'string' && value.trim() !== '';

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
  if (auth.mode === 'cognito') {
    const { region, userPoolId, userPoolClientId } = auth;
    if (!isText(region) || !isText(userPoolId) || !isText(userPoolClientId)) {
      return fail('auth needs region, userPoolId and userPoolClientId');
    }
    return { apiUrl: base, auth: { mode: 'cognito', region, userPoolId, userPoolClientId } };
  }
  return fail('auth.mode must be "dev" or "cognito"');
}

export async function loadConfig(url = '/config.json'): Promise<PageConfig> {
  const response = await fetch(url, { cache: 'no-store' });
  if (!response.ok) throw new Error(`config.json: ${url} answered ${response.status}.`);
  return parseConfig(await response.json());
}
