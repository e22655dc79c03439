import type { APIGatewayProxyEvent } from 'aws-lambda';

interface RestRequest {
  method: string;
  /** The resource path, as API Gateway passes it on the execute-api URL: without the stage. */
  path: string;
  /** Every value of each header, in the client's case (API Gateway keeps it). */
  headers?: Record<string, string[]>;
  query?: Record<string, string[]>;
  body?: string;
}

const lastOf = (values: Record<string, string[]>) =>
  Object.fromEntries(Object.entries(values).map(([k, v]) => [k, v.at(-1) as string]));

/**
 * An API Gateway REST proxy event (payload 1.0) as the `ANY /{proxy+}` method of the `api` stage passes it
 * (shape from the API Gateway guide's "Input format of a Lambda function for proxy integration"): the
 * single-value maps keep the last value of a repeated name, the multi-value maps every value.
 */
export function restProxyEvent({
  method,
  path,
  headers = {},
  query,
  body,
}: RestRequest): APIGatewayProxyEvent {
  const withHost = {
    Host: ['api123.execute-api.us-east-1.amazonaws.com'],
    'X-Forwarded-Proto': ['https'],
    ...headers,
  };
  return {
    resource: path === '/' ? '/' : '/{proxy+}',
    path,
    httpMethod: method,
    headers: lastOf(withHost),
    multiValueHeaders: withHost,
    queryStringParameters: query ? lastOf(query) : null,
    multiValueQueryStringParameters: query ?? null,
    pathParameters: path === '/' ? null : { proxy: path.slice(1) },
    stageVariables: null,
    requestContext: {
      accountId: '123456789012',
      apiId: 'api123',
      authorizer: null,
      domainName: 'api123.execute-api.us-east-1.amazonaws.com',
      domainPrefix: 'api123',
      httpMethod: method,
      identity: {
        accessKey: null,
        accountId: null,
        apiKey: null,
        apiKeyId: null,
        caller: null,
        clientCert: null,
        cognitoAuthenticationProvider: null,
        cognitoAuthenticationType: null,
        cognitoIdentityId: null,
        cognitoIdentityPoolId: null,
        principalOrgId: null,
        sourceIp: '203.0.113.10',
        user: null,
        userAgent: 'curl/8.5.0',
        userArn: null,
      },
      path: `/api${path}`,
      protocol: 'HTTP/1.1',
      requestId: 'c6af9ac6-7b61-11e6-9a41-93e8deadbeef',
      requestTimeEpoch: 1795608000000,
      resourceId: 'abc123',
      resourcePath: path === '/' ? '/' : '/{proxy+}',
      stage: 'api',
    },
    body: body ?? null,
    isBase64Encoded: false,
  };
}
