import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CORS_SETTINGS } from '../../functions/contracts/cors.ts';
import { API_STAGE } from '../../lib/front-door.ts';
import {
  auditAcknowledgements,
  deployed,
  nagReportFindings,
  pageConfigOf,
  type Resource,
  resolveIntrinsics,
  resourcesOf,
  type Synthesized,
  synth,
} from './synth.ts';

// chat:frontDoor=apigateway with the page, as `cdk synth -c chat:frontDoor=apigateway -c chat:web=true` would.
let gateway: Synthesized;
let bare: Synthesized;
const API_URL = `https://api123.execute-api.us-east-1.amazonaws.com/${API_STAGE}`;
const resources = (from: Synthesized, type: string) => resourcesOf(from.template, type);

beforeAll(() => {
  const page = mkdtempSync(join(tmpdir(), 'web-dist-'));
  writeFileSync(join(page, 'index.html'), '<!doctype html><title>chat</title>');
  gateway = synth(
    {
      frontDoor: 'apigateway',
      web: 'true',
      webAssetPath: page,
      allowedOrigins: 'https://chat.example.com',
      alarmEmail: 'oncall@example.com',
      apiRateLimit: '40',
      apiBurstLimit: '80',
      wafRequestsPerIpPer5Minutes: '600',
    },
    { nag: true },
  );
  bare = synth({ frontDoor: 'apigateway', cache: 'off', alarmEmail: 'oncall@example.com' }, { nag: true });
}, 180_000);

describe('chat:frontDoor=apigateway', () => {
  it('synthesizes with zero cdk-nag findings, each acknowledgement reasoned and matching a real finding', () => {
    for (const [name, result] of [
      ['with the page', gateway],
      ['API only, cache off', bare],
    ] as const) {
      expect(result.failure, name).toBeUndefined();
      expect(result.messages('error'), name).toEqual([]);
      expect(nagReportFindings(result), name).toEqual([]);
      expect(auditAcknowledgements(result.stack), name).toMatchObject({
        withoutReason: [],
        unmatched: [],
        unacknowledged: [],
        foreign: [],
      });
    }
  });

  it('streams: a regional REST API whose Lambda proxy integration uses the response-streaming invoke, up to the function timeout', () => {
    const [[apiId, api]] = resources(gateway, 'AWS::ApiGateway::RestApi') as [[string, Resource]];
    expect(api.Properties.EndpointConfiguration).toEqual({ Types: ['REGIONAL'] });
    const proxied = resources(gateway, 'AWS::ApiGateway::Method').filter(
      ([, m]) => m.Properties.HttpMethod === 'ANY',
    );
    // The root and {proxy+}: every route of the function, one integration.
    expect(proxied).toHaveLength(2);
    for (const [id, method] of proxied) {
      const integration = method.Properties.Integration as Record<string, unknown>;
      expect(integration, id).toMatchObject({
        Type: 'AWS_PROXY',
        IntegrationHttpMethod: 'POST',
        ResponseTransferMode: 'STREAM',
        TimeoutInMillis: 120_000,
      });
      expect(resolveIntrinsics(integration.Uri, deployed(gateway.template)), id).toMatch(
        /^arn:aws:apigateway:us-east-1:lambda:path\/2021-11-15\/functions\/<ChatStreamFunction\w+\.Arn>\/response-streaming-invocations$/,
      );
      expect(method.Properties.AuthorizationType, id).toBe('NONE');
      expect(JSON.stringify(method.Properties.RestApiId)).toContain(apiId);
    }
    const invokers = resources(gateway, 'AWS::Lambda::Permission').filter(
      ([, p]) => p.Properties.Principal === 'apigateway.amazonaws.com',
    );
    expect(invokers.length).toBeGreaterThan(0);
    for (const [, permission] of invokers)
      expect(JSON.stringify(permission.Properties.FunctionName)).toContain('ChatStreamFunction');
  });

  it('creates no Function URL: nothing reaches the function around the WAF', () => {
    for (const result of [gateway, bare]) {
      expect(resources(result, 'AWS::Lambda::Url')).toEqual([]);
      expect(resources(result, 'Custom::FunctionUrlCors')).toEqual([]);
      expect(Object.keys(result.template.toJSON().Outputs)).toContain('ApiUrl');
      expect(Object.keys(result.template.toJSON().Outputs)).not.toContain('FunctionUrl');
    }
  });

  it('throttles the stage, keeps JSON access logs with a retention', () => {
    const [[, stage]] = resources(gateway, 'AWS::ApiGateway::Stage') as [[string, Resource]];
    expect(stage.Properties.StageName).toBe(API_STAGE);
    expect(stage.Properties.MethodSettings).toEqual([
      expect.objectContaining({
        HttpMethod: '*',
        ResourcePath: '/*',
        ThrottlingRateLimit: 40,
        ThrottlingBurstLimit: 80,
      }),
    ]);
    const accessLogs = stage.Properties.AccessLogSetting as { DestinationArn: unknown; Format: string };
    expect(resolveIntrinsics(accessLogs.DestinationArn, deployed(gateway.template))).toMatch(
      /^arn:aws:logs:us-east-1:123456789012:log-group:<FrontDoorAccessLogs\w+>$/,
    );
    expect(JSON.parse(accessLogs.Format)).toMatchObject({
      requestId: '$context.requestId',
      status: '$context.status',
    });
    const [[, logs]] = resources(gateway, 'AWS::Logs::LogGroup').filter(([id]) =>
      id.startsWith('FrontDoorAccessLogs'),
    ) as [[string, Resource]];
    expect(logs.Properties.RetentionInDays).toBe(30);
  });

  it('puts a WAF web ACL on the stage: a per-IP rate rule first, then AWS managed rule groups', () => {
    const [[aclId, acl]] = resources(gateway, 'AWS::WAFv2::WebACL') as [[string, Resource]];
    expect(acl.Properties).toMatchObject({ Scope: 'REGIONAL', DefaultAction: { Allow: {} } });
    const rules = acl.Properties.Rules as Array<Record<string, unknown>>;
    expect(rules[0]).toMatchObject({
      Name: 'RequestsPerIp',
      Priority: 0,
      Action: { Block: {} },
      Statement: { RateBasedStatement: { Limit: 600, EvaluationWindowSec: 300, AggregateKeyType: 'IP' } },
    });
    expect(
      rules
        .slice(1)
        .map(
          (r) =>
            (r.Statement as { ManagedRuleGroupStatement: { Name: string } }).ManagedRuleGroupStatement.Name,
        ),
    ).toEqual([
      'AWSManagedRulesCommonRuleSet',
      'AWSManagedRulesKnownBadInputsRuleSet',
      'AWSManagedRulesAmazonIpReputationList',
    ]);
    const [[, association]] = resources(gateway, 'AWS::WAFv2::WebACLAssociation') as [[string, Resource]];
    expect(association.Properties.WebACLArn).toEqual({ 'Fn::GetAtt': [aclId, 'Arn'] });
    expect(resolveIntrinsics(association.Properties.ResourceArn, deployed(gateway.template))).toBe(
      `arn:aws:apigateway:us-east-1::/restapis/api123/stages/${API_STAGE}`,
    );
  });

  it("answers preflights in API Gateway for the page's origin and chat:allowedOrigins, with the contract's methods and headers", () => {
    const preflights = resources(gateway, 'AWS::ApiGateway::Method').filter(
      ([, m]) => m.Properties.HttpMethod === 'OPTIONS',
    );
    expect(preflights).toHaveLength(2);
    const known = deployed(gateway.template);
    for (const [id, method] of preflights) {
      const resolved = JSON.stringify(method.Properties.Integration, (_key, value) =>
        value && typeof value === 'object' && ('Fn::Join' in value || 'Fn::GetAtt' in value || 'Ref' in value)
          ? resolveIntrinsics(value, known)
          : value,
      );
      expect(resolved, id).toContain('https://d111111abcdef8.cloudfront.net');
      expect(resolved, id).toContain('https://chat.example.com');
      expect(resolved, id).toContain(CORS_SETTINGS.allowHeaders.join(','));
    }
    // Without any origin to allow there is no preflight to answer.
    expect(
      resources(bare, 'AWS::ApiGateway::Method').filter(([, m]) => m.Properties.HttpMethod === 'OPTIONS'),
    ).toEqual([]);
  });

  it("points the page at the API: config.json's apiUrl and the CSP's connect-src follow the front door", () => {
    expect(pageConfigOf(gateway).apiUrl).toBe(API_URL);
    const [[, policy]] = resources(gateway, 'AWS::CloudFront::ResponseHeadersPolicy') as [[string, Resource]];
    const headers = (
      policy.Properties.ResponseHeadersPolicyConfig as {
        SecurityHeadersConfig: { ContentSecurityPolicy: { ContentSecurityPolicy: unknown } };
      }
    ).SecurityHeadersConfig;
    const csp = resolveIntrinsics(
      headers.ContentSecurityPolicy.ContentSecurityPolicy,
      deployed(gateway.template),
    );
    expect(csp).toContain(
      "connect-src 'self' https://api123.execute-api.us-east-1.amazonaws.com https://streamingchat-123456789012.auth.us-east-1.amazoncognito.com;",
    );
    expect(csp).not.toContain('lambda-url');
  });
});
