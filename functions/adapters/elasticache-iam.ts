import { createHash, createHmac } from 'node:crypto';
import { request } from 'node:http';
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { SignatureV4 } from '@smithy/signature-v4';

/** SigV4's hash: SHA-256, or HMAC-SHA-256 when given a secret (node:crypto, no extra package). */
class Sha256 {
  readonly #secret: string | ArrayBuffer | ArrayBufferView | undefined;
  #hash;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.#secret = secret;
    this.#hash = this.#fresh();
  }
  #fresh() {
    if (this.#secret === undefined) return createHash('sha256');
    const key =
      typeof this.#secret === 'string'
        ? this.#secret
        : ArrayBuffer.isView(this.#secret)
          ? new Uint8Array(this.#secret.buffer, this.#secret.byteOffset, this.#secret.byteLength)
          : new Uint8Array(this.#secret);
    return createHmac('sha256', key);
  }
  update(data: Uint8Array): void {
    this.#hash.update(data);
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.#hash.digest());
  }
  reset(): void {
    this.#hash = this.#fresh();
  }
}

export interface IamAuthOptions {
  cacheName: string;
  user: string;
  region: string;
  /**
   * AWS_ENDPOINT_URL_ELASTICACHE: locally, the cache's token authority, which learns each signed token
   * (and may give it a shorter life) the way ElastiCache checks it on AUTH. Unset in AWS.
   */
  endpoint?: string;
}

/** A password for the cache and when new connections stop accepting it (epoch ms). */
export interface CacheToken {
  password: string;
  expiresAt: number;
}

/** IAM tokens live 15 minutes; a connection made with one lasts up to 12 hours (ElastiCache user guide). */
const TOKEN_SECONDS = 900;

type Credentials = ConstructorParameters<typeof SignatureV4>[0]['credentials'];

/**
 * ElastiCache IAM authentication: the password is a SigV4-presigned `connect` request for the user
 * and the serverless cache, signed with the function's role credentials.
 */
export async function signIamToken(
  { cacheName, user, region }: IamAuthOptions,
  credentials: Credentials,
  signingDate = new Date(),
): Promise<string> {
  const signer = new SignatureV4({ service: 'elasticache', region, credentials, sha256: Sha256 });
  const signed = await signer.presign(
    {
      method: 'GET',
      protocol: 'http:',
      hostname: cacheName,
      path: '/',
      query: { Action: 'connect', User: user, ResourceType: 'ServerlessCache' },
      headers: { host: cacheName },
    },
    { expiresIn: TOKEN_SECONDS, signingDate },
  );
  const query = new URLSearchParams(signed.query as Record<string, string>).toString();
  return `${cacheName}/?${query}`;
}

/** A fresh token on every call, signed locally (no network call in AWS). */
export function iamTokenSource(options: IamAuthOptions): () => Promise<CacheToken> {
  const credentials = defaultProvider();
  return async () => {
    const signedAt = Date.now();
    const password = await signIamToken(options, credentials, new Date(signedAt));
    if (!options.endpoint) return { password, expiresAt: signedAt + TOKEN_SECONDS * 1000 };
    const response = await post(options.endpoint, password, 2000);
    if (response.status !== 200) throw new Error(`cache token authority answered ${response.status}`);
    const { expiresAt } = JSON.parse(response.body) as { expiresAt: number };
    return { password, expiresAt };
  };
}

/**
 * One POST to the local token authority over `node:http`: `fetch` would load undici (tens of ms of the
 * local init, which the AWS path, without an endpoint, never pays).
 */
function post(url: string, body: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const failed = (error: Error) => reject(new Error(`cache token authority unreachable: ${error.message}`));
    const sent = request(url, { method: 'POST', signal: AbortSignal.timeout(timeoutMs) }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        text += chunk;
      });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text }));
      response.on('error', failed);
    });
    sent.on('error', failed);
    sent.end(body);
  });
}
