import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handler } from '../../../functions/jwks-fetch/handler.ts';

// A loopback server plays both the issuer (JWKS) and CloudFormation's presigned response URL.
const responses: Array<Record<string, unknown>> = [];
let base = '';
const server = createServer(async (req, res) => {
  if (req.method === 'GET' && req.url === '/pool/.well-known/jwks.json') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: [{ kid: 'k1', kty: 'RSA', n: 'abc', e: 'AQAB' }] }));
    return;
  }
  if (req.method === 'PUT' && req.url === '/cfn-response') {
    let body = '';
    for await (const chunk of req) body += chunk;
    responses.push(JSON.parse(body));
    res.end();
    return;
  }
  res.writeHead(404).end();
});

beforeAll(async () => {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const event = (requestType: 'Create' | 'Update' | 'Delete', jwksUrl: string) =>
  ({
    RequestType: requestType,
    ResponseURL: `${base}/cfn-response`,
    StackId: 'stack',
    RequestId: 'req-1',
    LogicalResourceId: 'Jwks',
    ResourceType: 'AWS::CloudFormation::CustomResource',
    ServiceToken: 'arn',
    PhysicalResourceId: 'jwks-existing',
    ResourceProperties: { ServiceToken: 'arn', JwksUrl: jwksUrl },
  }) as unknown as CloudFormationCustomResourceEvent;

describe('JWKS fetch custom resource', () => {
  it('answers CloudFormation with the JWKS as an attribute', async () => {
    await handler(event('Create', `${base}/pool/.well-known/jwks.json`));
    expect(responses.at(-1)).toMatchObject({
      Status: 'SUCCESS',
      PhysicalResourceId: 'jwks-req-1',
      LogicalResourceId: 'Jwks',
    });
    const data = responses.at(-1)?.Data as { Jwks: string } | undefined;
    expect(JSON.parse(data?.Jwks ?? '{}')).toEqual({
      keys: [{ kid: 'k1', kty: 'RSA', n: 'abc', e: 'AQAB' }],
    });
  });

  it('reports FAILED with a reason when the JWKS cannot be fetched', async () => {
    await handler(event('Update', `${base}/missing`));
    expect(responses.at(-1)).toMatchObject({
      Status: 'FAILED',
      PhysicalResourceId: 'jwks-existing',
      Reason: expect.stringContaining('404'),
    });
  });

  it('succeeds on delete without fetching', async () => {
    await handler(event('Delete', `${base}/missing`));
    expect(responses.at(-1)).toMatchObject({ Status: 'SUCCESS', Data: {} });
  });
});
