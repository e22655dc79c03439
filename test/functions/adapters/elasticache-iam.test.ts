import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { iamTokenSource } from '../../../functions/adapters/elasticache-iam.ts';

const saved = { ...process.env };
beforeEach(() => {
  process.env.AWS_ACCESS_KEY_ID = 'AKIDEXAMPLE';
  process.env.AWS_SECRET_ACCESS_KEY = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';
  delete process.env.AWS_SESSION_TOKEN;
  delete process.env.AWS_PROFILE;
});
afterEach(() => {
  process.env = { ...saved };
});

describe('ElastiCache IAM token', () => {
  it('is a SigV4-presigned connect request for the user and serverless cache, valid 15 minutes', async () => {
    const token = await iamTokenSource({
      cacheName: 'chat-cache',
      user: 'chat-stream-1a2b',
      region: 'eu-west-1',
    })().then((t) => t.password);
    expect(token.startsWith('chat-cache/?')).toBe(true);
    const query = new URLSearchParams(token.slice('chat-cache/?'.length));
    expect(Object.fromEntries(query)).toMatchObject({
      Action: 'connect',
      User: 'chat-stream-1a2b',
      ResourceType: 'ServerlessCache',
      'X-Amz-Algorithm': 'AWS4-HMAC-SHA256',
      'X-Amz-Expires': '900',
      'X-Amz-SignedHeaders': 'host',
    });
    expect(query.get('X-Amz-Credential')).toMatch(
      /^AKIDEXAMPLE\/\d{8}\/eu-west-1\/elasticache\/aws4_request$/,
    );
    expect(query.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/);
    expect(token).not.toContain('http');
  });

  it('signs with the secret: another secret gives another signature for the same request', async () => {
    const options = { cacheName: 'c', user: 'u', region: 'us-east-1' };
    const first = new URLSearchParams((await iamTokenSource(options)()).password.slice(4));
    process.env.AWS_SECRET_ACCESS_KEY = 'another-secret';
    const second = new URLSearchParams((await iamTokenSource(options)()).password.slice(4));
    if (first.get('X-Amz-Date') === second.get('X-Amz-Date')) {
      expect(second.get('X-Amz-Signature')).not.toBe(first.get('X-Amz-Signature'));
    }
    expect(second.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/);
  });
});
