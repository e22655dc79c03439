/**
 * What the chat page reads from /config.json at start. `npm run dev` writes the local form, a deployment
 * (`-c chat:web=true`) writes it beside the built page; both follow this one shape.
 */
export type PageAuthConfig =
  /** Local only: a ready token per local user, no sign-in. */
  | { mode: 'dev'; users: Record<string, string> }
  /**
   * OAuth 2.0 authorization code + PKCE against Cognito's managed login (or the local OIDC emulator, which
   * serves the same endpoints). The redirect URI is the page's own origin followed by `/`.
   */
  | {
      mode: 'oauth';
      clientId: string;
      /** `https://<domain>/oauth2/authorize` on Cognito. */
      authorizeEndpoint: string;
      /** `https://<domain>/oauth2/token`. */
      tokenEndpoint: string;
      /** `https://<domain>/oauth2/revoke`: the refresh token is revoked on sign-out. */
      revokeEndpoint: string;
      /** `https://<domain>/logout`: ends the managed-login session. */
      logoutEndpoint: string;
      scopes: string[];
    };

export interface PageConfig {
  /** The API's base URL (Function URL, API Gateway stage or custom domain), without a trailing slash. */
  apiUrl: string;
  auth: PageAuthConfig;
}

/**
 * The page's Content-Security-Policy: no inline script or style, and calls only to `connect` (the API and
 * the sign-in domain). The deployment (CloudFront) and the local page server send the same policy.
 */
export function pageSecurityPolicy(connect: string[], options: { upgradeInsecure: boolean }): string {
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    `connect-src 'self' ${connect.join(' ')}`,
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    ...(options.upgradeInsecure ? ['upgrade-insecure-requests'] : []),
  ].join('; ');
}
