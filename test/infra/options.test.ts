import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { CORS_SETTINGS } from '../../functions/contracts/cors.ts';
import type { PageConfig } from '../../functions/contracts/page-config.ts';
import { DEFAULT_CONFIG } from '../../lib/config.ts';
import {
  auditAcknowledgements,
  deployed,
  FUNCTION_URL_HOST,
  nagReportFindings,
  pageConfigOf,
  type Resource,
  resolveIntrinsics,
  resourcesOf,
  type Statement,
  type Synthesized,
  statementsOf,
  synth,
  TEST_NONCE,
} from './synth.ts';

// The three deploy options (issues 13 and 14), each synthesized once with cdk-nag, as `cdk synth -c …` would.
let cacheOff: Synthesized;
let managed: Synthesized;
let web: Synthesized;
let missingPage: Synthesized;

const resources = (from: Template, type: string) => resourcesOf(from, type).map(([, r]) => r);
const fnByDescription = (from: Template, text: string) =>
  resources(from, 'AWS::Lambda::Function').find((f) =>
    String(f.Properties.Description).includes(text),
  ) as Resource;
const envOf = (fn: Resource) =>
  (fn.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
/** The one resource of `type` (whose logical id contains `idPart`, when the stack has several). */
const onlyId = (from: Template, type: string, idPart = '') => {
  const found = resourcesOf(from, type).filter(([id]) => id.includes(idPart));
  expect(found, `${type} ${idPart}`).toHaveLength(1);
  return found[0] as [string, Resource];
};
const alarmNames = (from: Template) =>
  resources(from, 'AWS::CloudWatch::Alarm').map((a) => String(a.Properties.AlarmName));

beforeAll(() => {
  const page = mkdtempSync(join(tmpdir(), 'web-dist-'));
  writeFileSync(join(page, 'index.html'), '<!doctype html><title>chat</title><div id="root"></div>');
  mkdirSync(join(page, 'assets'));
  writeFileSync(join(page, 'assets', 'index-abc123.js'), 'console.log("chat")');
  // chat:natGateway is asked for and must be ignored, with a warning, not built.
  cacheOff = synth({ cache: 'off', natGateway: 'true', alarmEmail: 'oncall@example.com' }, { nag: true });
  // Also the page, in a pinned Region: the options combine, and cdk-nag names Region-specific resources.
  managed = synth(
    {
      compute: 'managed-instances',
      streamMemoryMb: '2048',
      perEnvironmentMaxConcurrency: '32',
      managedInstancesMaxVCpus: '24',
      alarmEmail: 'oncall@example.com',
      region: 'eu-west-1',
      modelId: 'eu.anthropic.claude-haiku-4-5-20251001-v1:0',
      web: 'true',
      webAssetPath: page,
    },
    { nag: true, region: 'eu-west-1' },
  );
  web = synth(
    {
      web: 'true',
      webAssetPath: page,
      allowedOrigins: 'http://localhost:5173',
      alarmEmail: 'oncall@example.com',
    },
    { nag: true },
  );
  missingPage = synth({ web: 'true', webAssetPath: join(page, 'not-built') });
}, 120_000);

describe('every option', () => {
  it('synthesizes with zero cdk-nag findings, each acknowledgement reasoned and matching a real finding', () => {
    for (const [name, result] of [
      ['cache off', cacheOff],
      ['managed instances with the page, in a pinned Region', managed],
      ['web', web],
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
});

describe('logs of every function', () => {
  it("go to a log group of the stack with its retention, CDK's own handlers included, and go with it (review N16)", () => {
    for (const [name, result] of [
      ['cache off', cacheOff],
      ['managed instances with the page', managed],
      ['web', web],
    ] as const) {
      const functions = resourcesOf(result.template, 'AWS::Lambda::Function');
      expect(functions.length, name).toBeGreaterThan(5);
      for (const [id, fn] of functions) {
        const target = (fn.Properties.LoggingConfig as { LogGroup?: { Ref?: string } } | undefined)?.LogGroup
          ?.Ref;
        const group = resourcesOf(result.template, 'AWS::Logs::LogGroup').find(
          ([groupId]) => groupId === target,
        )?.[1];
        expect(group?.Properties.RetentionInDays, `${name}: ${id}`).toBe(DEFAULT_CONFIG.logRetentionDays);
        expect(group?.DeletionPolicy, `${name}: ${id}`).toBe('Delete');
      }
    }
  });
});

describe('chat:cache=off', () => {
  it('builds no VPC, endpoint, NAT gateway, security group or Valkey at all', () => {
    const types = Object.values(cacheOff.template.toJSON().Resources as Record<string, Resource>).map(
      (r) => r.Type,
    );
    expect(types.filter((t) => t.startsWith('AWS::EC2::'))).toEqual([]);
    expect(types.filter((t) => t.startsWith('AWS::ElastiCache::'))).toEqual([]);
    expect(JSON.stringify(cacheOff.template.toJSON())).not.toContain('elasticache:');
  });

  it('runs every function outside a VPC, and the stream function without REDIS_* (DynamoDB directly)', () => {
    const functions = resources(cacheOff.template, 'AWS::Lambda::Function');
    expect(functions.length).toBeGreaterThanOrEqual(7);
    for (const fn of functions)
      expect(fn.Properties.VpcConfig, String(fn.Properties.Description)).toBeUndefined();
    const env = envOf(fnByDescription(cacheOff.template, 'Streams chat'));
    expect(Object.keys(env).filter((key) => key.startsWith('REDIS_'))).toEqual([]);
    expect(env).toMatchObject({ LIMIT_TURNS_PER_MINUTE: '10', MODEL_ID: expect.any(String) });
    // No ENI management either: the VPC access managed policy is attached to no role.
    expect(JSON.stringify(cacheOff.template.toJSON())).not.toContain('AWSLambdaVPCAccessExecutionRole');
  });

  it('keeps every alarm but the four that watch Valkey, and warns that chat:natGateway has nothing to act on', () => {
    const names = alarmNames(cacheOff.template);
    expect(names).toHaveLength(14);
    expect(names).not.toContain('StreamingChat-ValkeyThrottled');
    expect(names).not.toContain('StreamingChat-LimiterFallbacks');
    expect(names).toContain('StreamingChat-LimitRejectionRate');
    expect(JSON.stringify(cacheOff.template.toJSON())).not.toContain('AWS/ElastiCache');
    expect(cacheOff.messages('warning')).toContainEqual({
      path: 'StreamingChat',
      text: expect.stringContaining('chat:natGateway ignored: chat:cache=off builds no VPC.'),
    });
  });
});

describe('chat:compute=managed-instances', () => {
  it('runs the stream function on an arm64 capacity provider in the function subnets and security group, capped in vCPUs', () => {
    const [providerId, provider] = onlyId(managed.template, 'AWS::Lambda::CapacityProvider');
    const subnets = resourcesOf(managed.template, 'AWS::EC2::Subnet').map(([id]) => ({ Ref: id }));
    const [groupId] = resourcesOf(managed.template, 'AWS::EC2::SecurityGroup').find(([id]) =>
      id.startsWith('NetworkFunctionSecurityGroup'),
    ) as [string, Resource];
    expect(provider.Properties).toMatchObject({
      InstanceRequirements: { Architectures: ['arm64'] },
      CapacityProviderScalingConfig: { MaxVCpuCount: 24 },
      VpcConfig: { SubnetIds: subnets, SecurityGroupIds: [{ 'Fn::GetAtt': [groupId, 'GroupId'] }] },
      TelemetryConfig: {
        LoggingConfig: { LogGroup: { Ref: expect.stringMatching(/^ManagedInstancesLogs/) } },
      },
    });
    const stream = fnByDescription(managed.template, 'Streams chat').Properties;
    expect(stream).toMatchObject({
      MemorySize: 2048,
      Architectures: ['arm64'],
      PublishToLatestPublished: true,
      CapacityProviderConfig: {
        LambdaManagedInstancesCapacityProviderConfig: {
          CapacityProviderArn: { 'Fn::GetAtt': [providerId, 'Arn'] },
          PerExecutionEnvironmentMaxConcurrency: 32,
        },
      },
    });
    // The network is the capacity provider's; Managed Instances take no reserved concurrency.
    expect(stream.VpcConfig).toBeUndefined();
    expect(stream.ReservedConcurrentExecutions).toBeUndefined();
    const [, operator] = resourcesOf(managed.template, 'AWS::IAM::Role').find(([id]) =>
      id.startsWith('ManagedInstancesCapacityProviderOperatorRole'),
    ) as [string, Resource];
    expect(JSON.stringify(operator.Properties.ManagedPolicyArns)).toContain(
      ':iam::aws:policy/AWSLambdaManagedEC2ResourceOperator',
    );
  });

  it('keeps the cache and its IAM user, and adds a CloudWatch Logs endpoint for logs sent from the instances', () => {
    expect(envOf(fnByDescription(managed.template, 'Streams chat'))).toMatchObject({
      REDIS_AUTH: 'iam',
      REDIS_CLUSTER: 'true',
    });
    const services = resources(managed.template, 'AWS::EC2::VPCEndpoint').map((e) =>
      JSON.stringify(e.Properties.ServiceName),
    );
    expect(services.filter((s) => /\.logs"/.test(s))).toHaveLength(1);
    // The attachments bucket is reached through an S3 gateway endpoint (the subnets have no NAT).
    expect(services.filter((s) => /\.s3"/.test(s))).toHaveLength(1);
    expect(services).toHaveLength(6);
  });

  it('publishes refreshed JWKS keys to $LATEST.PUBLISHED, which the unqualified Function URL runs', () => {
    const refresh = statementsOf(managed.template, 'AuthJwksRefresh');
    expect(refresh).toHaveLength(1);
    // @aws-cdk/aws-iam:minimizePolicies sorts the actions.
    expect(refresh[0]?.actions).toEqual([
      'lambda:GetFunctionConfiguration',
      'lambda:PublishVersion',
      'lambda:UpdateFunctionConfiguration',
    ]);
    expect(refresh[0]?.Resource).toEqual({
      'Fn::GetAtt': [expect.stringMatching(/^ChatStreamFunction/), 'Arn'],
    });
    expect(envOf(fnByDescription(managed.template, 'refreshes the stream')).PUBLISH_TO_LATEST_PUBLISHED).toBe(
      'true',
    );
  });

  it('warns at every synth that streaming through a Function URL on Managed Instances is unverified', () => {
    const warnings = managed.messages('warning').filter((m) => m.path === 'StreamingChat/ManagedInstances');
    expect(warnings).toEqual([
      {
        path: 'StreamingChat/ManagedInstances',
        text: expect.stringMatching(
          /^UNVERIFIED: .*response streaming through a Function URL.*npm run smoke/,
        ),
      },
    ]);
  });
});

describe('chat:web=true', () => {
  it('keeps the bucket private: all public access blocked, TLS enforced, readable only by this distribution', () => {
    // The page's bucket by its id: the stack's other bucket holds attachments.
    const [bucketId, bucket] = onlyId(web.template, 'AWS::S3::Bucket', 'Site');
    expect(bucket.Properties.PublicAccessBlockConfiguration).toEqual({
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
    const [, policy] = onlyId(web.template, 'AWS::S3::BucketPolicy', 'Site');
    const statements = (policy.Properties.PolicyDocument as { Statement: Statement[] }).Statement;
    expect(statements).toContainEqual(
      expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
    );
    const [distributionId] = onlyId(web.template, 'AWS::CloudFront::Distribution');
    const allows = statements.filter((s) => s.Effect === 'Allow');
    // CloudFront (this distribution only) may read; CDK's auto-delete function may empty it on stack deletion.
    for (const allow of allows) expect(JSON.stringify(allow.Principal)).not.toContain('"*"');
    expect(allows).toContainEqual(
      expect.objectContaining({
        Principal: { Service: 'cloudfront.amazonaws.com' },
        Action: 's3:GetObject',
        Condition: {
          StringEquals: {
            'AWS:SourceArn': {
              'Fn::Join': ['', expect.arrayContaining([{ Ref: distributionId }])],
            },
          },
        },
      }),
    );
    expect(JSON.stringify(policy.Properties.Bucket)).toContain(bucketId);
  });

  it('serves the page over HTTPS only (HTTP redirects), through origin access control, with the security headers policy', () => {
    const [, distribution] = onlyId(web.template, 'AWS::CloudFront::Distribution');
    const [policyId] = onlyId(web.template, 'AWS::CloudFront::ResponseHeadersPolicy');
    const [oacId, oac] = onlyId(web.template, 'AWS::CloudFront::OriginAccessControl');
    const config = distribution.Properties.DistributionConfig as Record<string, unknown>;
    expect(config).toMatchObject({
      DefaultRootObject: 'index.html',
      DefaultCacheBehavior: {
        ViewerProtocolPolicy: 'redirect-to-https',
        AllowedMethods: ['GET', 'HEAD'],
        ResponseHeadersPolicyId: { Ref: policyId },
      },
      Origins: [expect.objectContaining({ OriginAccessControlId: { 'Fn::GetAtt': [oacId, 'Id'] } })],
    });
    expect(oac.Properties.OriginAccessControlConfig).toMatchObject({
      OriginAccessControlOriginType: 's3',
      SigningBehavior: 'always',
      SigningProtocol: 'sigv4',
    });
  });

  it('sends HSTS, nosniff, no framing, a referrer policy and a CSP that reaches only the Function URL and Cognito', () => {
    const [, policy] = onlyId(web.template, 'AWS::CloudFront::ResponseHeadersPolicy');
    const headers = (
      policy.Properties.ResponseHeadersPolicyConfig as { SecurityHeadersConfig: Record<string, unknown> }
    ).SecurityHeadersConfig;
    expect(headers).toMatchObject({
      StrictTransportSecurity: {
        AccessControlMaxAgeSec: 63_072_000,
        IncludeSubdomains: true,
        Override: true,
      },
      ContentTypeOptions: { Override: true },
      FrameOptions: { FrameOption: 'DENY', Override: true },
      ReferrerPolicy: { ReferrerPolicy: 'strict-origin-when-cross-origin', Override: true },
    });
    const csp = resolveIntrinsics(
      (headers.ContentSecurityPolicy as { ContentSecurityPolicy: unknown }).ContentSecurityPolicy,
      deployed(web.template),
    );
    for (const directive of [
      "default-src 'self'",
      "script-src 'self'",
      "frame-ancestors 'none'",
      "object-src 'none'",
      "form-action 'self'",
    ])
      expect(csp).toContain(directive);
    // connect-src: the host of this stack's API and its managed login domain (token, revoke), nothing else.
    expect(csp).toContain(
      `connect-src 'self' https://${FUNCTION_URL_HOST} https://streamingchat-123456789012.auth.us-east-1.amazoncognito.com;`,
    );
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toContain('*');
  });

  it('deploys the page and a config.json (PageConfig): the API without a trailing slash and managed login with code + PKCE', () => {
    const [, deployment] = onlyId(web.template, 'Custom::CDKBucketDeployment');
    const [bucketId] = onlyId(web.template, 'AWS::S3::Bucket', 'Site');
    expect(deployment.Properties).toMatchObject({
      DestinationBucketName: { Ref: bucketId },
      Prune: true,
      SystemMetadata: { 'cache-control': 'no-cache' },
    });
    // Never a CloudFront invalidation: its waiter times out now and then and rolls the stack back;
    // every object is revalidated on each load instead (review N5).
    expect(deployment.Properties.DistributionId).toBeUndefined();
    expect(deployment.Properties.DistributionPaths).toBeUndefined();
    expect(JSON.stringify(web.template.toJSON())).not.toContain('cloudfront:CreateInvalidation');
    const [, clientResource] = onlyId(web.template, 'AWS::Cognito::UserPoolClient');
    expect(clientResource).toBeDefined();
    const config = pageConfigOf(web);
    const base = 'https://streamingchat-123456789012.auth.us-east-1.amazoncognito.com';
    expect(config).toEqual({
      apiUrl: `https://${FUNCTION_URL_HOST}`,
      auth: {
        mode: 'oauth',
        clientId: '<WebClientId>',
        authorizeEndpoint: `${base}/oauth2/authorize`,
        tokenEndpoint: `${base}/oauth2/token`,
        revokeEndpoint: `${base}/oauth2/revoke`,
        logoutEndpoint: `${base}/logout`,
        scopes: ['openid', 'email', 'profile'],
      },
    } satisfies PageConfig);
    // The other source is the built page, index.html included.
    const keys = deployment.Properties.SourceObjectKeys as string[];
    const markers = deployment.Properties.SourceMarkers as Array<Record<string, unknown>>;
    const configAt = markers.findIndex((m) => Object.keys(m).length > 0);
    const pageKey = String(keys[1 - configAt]).replace(/\.zip$/, '');
    expect(readFileSync(join(web.outdir, `asset.${pageKey}`, 'index.html'), 'utf8')).toContain('<title>chat');
  });

  it('signs the page in through managed login: code grant only, no secret, the page origin as callback and sign-out URL, refresh tokens revocable and short', () => {
    const [clientId, client] = onlyId(web.template, 'AWS::Cognito::UserPoolClient');
    const known = deployed(web.template);
    expect(client.Properties).toMatchObject({
      GenerateSecret: false,
      EnableTokenRevocation: true,
      RefreshTokenValidity: 720,
      TokenValidityUnits: expect.objectContaining({ RefreshToken: 'minutes' }),
    });
    // The code grant is opened by a custom resource once the distribution exists (the stream function
    // names the client, the CSP names the function's URL: a client naming the distribution is a cycle).
    const [settingsId, settings] = onlyId(web.template, 'Custom::PageSignIn');
    expect(settings.Properties).toMatchObject({
      ClientId: { Ref: clientId },
      AllowedOAuthFlows: ['code'],
      AllowedOAuthScopes: ['openid', 'email', 'profile'],
      DeployNonce: TEST_NONCE,
    });
    expect(settings.DependsOn).toContain(clientId);
    for (const urls of [settings.Properties.CallbackURLs, settings.Properties.LogoutURLs])
      expect((urls as unknown[]).map((url) => resolveIntrinsics(url, known))).toEqual([
        'https://d111111abcdef8.cloudfront.net/',
      ]);
    expect(statementsOf(web.template, 'AuthPageSignInFunction')).toEqual([
      expect.objectContaining({
        actions: ['cognito-idp:DescribeUserPoolClient', 'cognito-idp:UpdateUserPoolClient'],
        Resource: { 'Fn::GetAtt': [expect.stringMatching(/^AuthUserPool/), 'Arn'] },
      }),
    ]);
    expect(settingsId).toMatch(/^AuthPageSignInSettings/);
    // The page no longer posts passwords: no USER_PASSWORD_AUTH, and no implicit grant.
    expect([...(client.Properties.ExplicitAuthFlows as string[])].sort()).toEqual([
      'ALLOW_ADMIN_USER_PASSWORD_AUTH',
      'ALLOW_REFRESH_TOKEN_AUTH',
      'ALLOW_USER_SRP_AUTH',
    ]);
    const [domainId, domain] = onlyId(web.template, 'AWS::Cognito::UserPoolDomain');
    expect(domain.Properties).toMatchObject({ ManagedLoginVersion: 2 });
    expect(resolveIntrinsics(domain.Properties.Domain, known)).toBe('streamingchat-123456789012');
    const [, branding] = onlyId(web.template, 'AWS::Cognito::ManagedLoginBranding');
    expect(branding).toMatchObject({
      Properties: { UseCognitoProvidedValues: true, ClientId: { Ref: expect.stringMatching(/WebClient/) } },
      DependsOn: [domainId],
    });
    // TOTP as an optional second factor, and password reset by e-mail: managed login offers both.
    const [, pool] = onlyId(web.template, 'AWS::Cognito::UserPool');
    expect(pool.Properties).toMatchObject({
      MfaConfiguration: 'OPTIONAL',
      EnabledMfas: ['SOFTWARE_TOKEN_MFA'],
      AccountRecoverySetting: { RecoveryMechanisms: [{ Name: 'verified_email', Priority: 1 }] },
    });
  });

  it('keeps the app client closed to OAuth without the page', () => {
    const [, client] = onlyId(cacheOff.template, 'AWS::Cognito::UserPoolClient');
    expect(client.Properties.AllowedOAuthFlows).toBeUndefined();
    expect(client.Properties.CallbackURLs).toBeUndefined();
    expect(resourcesOf(cacheOff.template, 'Custom::PageSignIn')).toEqual([]);
    expect(client.Properties).toMatchObject({ EnableTokenRevocation: true, RefreshTokenValidity: 720 });
    expect(resourcesOf(cacheOff.template, 'AWS::Cognito::UserPoolDomain')).toEqual([]);
  });

  it("allows the page's CloudFront origin in the Function URL's CORS (contract settings), written after the URL by a custom resource that may do nothing else", () => {
    const [urlId, url] = onlyId(web.template, 'AWS::Lambda::Url');
    const [distributionId] = onlyId(web.template, 'AWS::CloudFront::Distribution');
    const [corsId, cors] = onlyId(web.template, 'Custom::FunctionUrlCors');
    const pageOrigin = { 'Fn::Join': ['', ['https://', { 'Fn::GetAtt': [distributionId, 'DomainName'] }]] };
    const contract = {
      AllowMethods: [...CORS_SETTINGS.allowMethods],
      AllowHeaders: [...CORS_SETTINGS.allowHeaders],
      ExposeHeaders: [...CORS_SETTINGS.exposeHeaders],
      MaxAge: CORS_SETTINGS.maxAgeSeconds,
    };
    expect(cors.Properties).toMatchObject({
      FunctionName: { Ref: expect.stringMatching(/^ChatStreamFunction/) },
      Cors: { AllowOrigins: [pageOrigin, 'http://localhost:5173'], ...contract },
    });
    expect(web.template.toJSON().Resources[corsId].DependsOn).toContain(urlId);
    // What CloudFormation writes first: the context origins with the same settings.
    expect(url.Properties.Cors).toEqual({ AllowOrigins: ['http://localhost:5173'], ...contract });
    const writer = statementsOf(web.template, 'FunctionUrlCorsFunction');
    expect(writer).toEqual([
      expect.objectContaining({
        actions: ['lambda:UpdateFunctionUrlConfig'],
        Resource: { 'Fn::GetAtt': [expect.stringMatching(/^ChatStreamFunction/), 'Arn'] },
      }),
    ]);
  });

  it('outputs WebUrl, the https:// address of the distribution', () => {
    const [distributionId] = onlyId(web.template, 'AWS::CloudFront::Distribution');
    expect(web.template.findOutputs('WebUrl').WebUrl?.Value).toEqual({
      'Fn::Join': ['', ['https://', { 'Fn::GetAtt': [distributionId, 'DomainName'] }, '/']],
    });
  });

  it('fails the synth, saying to run npm run build:web, when the built page is missing', () => {
    expect(missingPage.messages('error')).toEqual([
      { path: 'StreamingChat', text: expect.stringContaining('run `npm run build:web` first') },
    ]);
    // Validation fails the synth itself (@aws-cdk/core:annotationsInValidationReport): nothing is deployable.
    expect(String(missingPage.failure)).toContain('run `npm run build:web` first');
  });
});

describe('other options leave no trace of these', () => {
  it('builds no capacity provider, distribution or CORS writer unless asked', () => {
    for (const result of [cacheOff, web]) {
      expect(resourcesOf(result.template, 'AWS::Lambda::CapacityProvider')).toEqual([]);
      result.template.resourcePropertiesCountIs(
        'AWS::Lambda::Function',
        Match.objectLike({ CapacityProviderConfig: Match.anyValue() }),
        0,
      );
    }
    for (const result of [cacheOff]) {
      expect(resourcesOf(result.template, 'AWS::CloudFront::Distribution')).toEqual([]);
      expect(resourcesOf(result.template, 'Custom::FunctionUrlCors')).toEqual([]);
      expect(result.template.findOutputs('WebUrl')).toEqual({});
    }
  });
});
