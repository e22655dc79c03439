import { createHash, createHmac } from 'node:crypto';
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
}

/** IAM tokens live 15 minutes; a connection made with one lasts up to 12 hours (ElastiCache user guide). */
const TOKEN_SECONDS = 900;

/**
 * ElastiCache IAM authentication: the password is a SigV4-presigned `connect` request for the user
 * and the serverless cache, signed with the function's role credentials.
 */
export function iamTokenSource({ cacheName, user, region }: IamAuthOptions): () => Promise<string> {
  const signer = new SignatureV4({
    service: 'elasticache',
    region,
    credentials: defaultProvider(),
    sha256: Sha256,
  });
  return async () => {
    const signed = await signer.presign(
      {
        method: 'GET',
        protocol: 'http:',
        hostname: cacheName,
        path: '/',
        query: { Action: 'connect', User: user, ResourceType: 'ServerlessCache' },
        headers: { host: cacheName },
      },
      { expiresIn: TOKEN_SECONDS },
    );
    const query = new URLSearchParams(signed.query as Record<string, string>).toString();
    return `${cacheName}/?${query}`;
  };
}
