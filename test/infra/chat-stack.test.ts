import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { App, Stack, Validations } from 'aws-cdk-lib';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { Queue } from 'aws-cdk-lib/aws-sqs';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { CORS_SETTINGS } from '../../functions/contracts/cors.ts';
import { DEFAULTS, modelTimeoutMs } from '../../functions/contracts/defaults.ts';
import { QUEUE_SETTINGS } from '../../functions/contracts/queue.ts';
import {
  ACTIVITY_INDEX,
  TABLE_KEYS,
  TTL_ATTRIBUTE,
  tableDefinition,
} from '../../functions/contracts/table.ts';
import { DEFAULT_CONFIG } from '../../lib/config.ts';
import {
  auditAcknowledgements,
  nagReportFindings,
  type Resource,
  resourcesOf,
  type Synthesized,
  statementsOf,
  synth,
  TEST_NONCE,
} from './synth.ts';

// Offline: each configuration is synthesized once (only the main one bundles with esbuild) and shared.
let main: Synthesized;
let dev: Synthesized;
let pinned: Synthesized;
let template: Template;
const resources = (type: string, from: Template = template) => resourcesOf(from, type).map(([, r]) => r);
const fnByDescription = (text: string, from: Template = template) =>
  resources('AWS::Lambda::Function', from).find((f) =>
    String(f.Properties.Description).includes(text),
  ) as Resource;
const fnId = (text: string, from: Template = template) =>
  resourcesOf(from, 'AWS::Lambda::Function').find(([, f]) =>
    String(f.Properties.Description).includes(text),
  )?.[0] ?? '';
const envOf = (fn: Resource) =>
  (fn.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
// CDK's own functions (its code, its runtime choice): the Provider framework's and the custom resource
// that strips the VPC's default security group (@aws-cdk/aws-ec2:restrictDefaultSecurityGroup); every
// other function is ours.
const isFramework = (fn: Resource) =>
  ['framework.onEvent', '__entrypoint__.handler'].includes(String(fn.Properties.Handler));
// A pinned production stage: Region, AZ ids, guardrail, cache limits, product ids, alarm e-mail.
const PINNED = {
  production: true,
  alarmEmail: 'oncall@example.com',
  region: 'eu-west-1',
  modelId: 'eu.anthropic.claude-haiku-4-5-20251001-v1:0',
  modelProductIds: 'prod-abc123xyz',
  availabilityZones: 'euw1-az1,euw1-az3',
  guardrailId: 'gr1abc2def3',
  guardrailVersion: '3',
  guardrailStreamMode: 'async',
  guardrailProfileId: 'eu.guardrail.v1:0',
  cacheDataStorageGb: 10,
  cacheEcpuPerSecond: 20000,
  streamReservedConcurrency: 250,
  titleModelId: 'eu.amazon.nova-micro-v1:0',
  limitTurnsPerMinute: '30',
  limitConcurrentStreams: '5',
  limitTokensPerDay: '1000000',
};

beforeAll(() => {
  main = synth(
    {
      knowledgeBaseId: 'KB12345678',
      allowedOrigins: ['https://chat.example.com'],
      alarmEmail: 'oncall@example.com',
    },
    { bundle: true },
  );
  if (main.failure) throw main.failure;
  template = main.template;
  // A development stage: NAT, no protection, no knowledge base, other sizes, no reserved concurrency.
  dev = synth({
    natGateway: 'true',
    deletionProtection: 'false',
    removalPolicy: 'destroy',
    streamMemoryMb: '2048',
    streamTimeoutSeconds: '300',
    allowedOrigins: '',
    streamReservedConcurrency: 'none',
    jwksRefreshMinutes: '0',
    titles: 'false',
    limitTurnsPerMinute: '0',
    limitConcurrentStreams: '0',
    limitTokensPerDay: '0',
  });
  pinned = synth(PINNED, { region: PINNED.region, nag: true });
}, 120_000);

describe('network', () => {
  it('is a VPC without NAT: isolated subnets in 2 AZs, flow logs, and the endpoints the function needs', () => {
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    template.resourceCountIs('AWS::EC2::InternetGateway', 0);
    template.resourceCountIs('AWS::EC2::Subnet', 2);
    template.resourceCountIs('AWS::EC2::FlowLog', 1);
    const endpoints = resources('AWS::EC2::VPCEndpoint');
    const services = endpoints.map((e) => JSON.stringify(e.Properties.ServiceName));
    expect(
      endpoints.find((e) => JSON.stringify(e.Properties.ServiceName).includes('dynamodb'))?.Properties
        .VpcEndpointType,
    ).toBe('Gateway');
    for (const service of ['.sqs', '.bedrock-runtime', '.bedrock-agent-runtime']) {
      const endpoint = endpoints.find((e) => JSON.stringify(e.Properties.ServiceName).includes(service));
      expect(endpoint, `${service} in ${services}`).toBeDefined();
      expect(endpoint?.Properties).toMatchObject({ VpcEndpointType: 'Interface', PrivateDnsEnabled: true });
    }
  });

  it("strips the rules of the VPC's default security group (a pinned flag; Security Hub EC2.2, review N17)", () => {
    const [[, strip]] = resourcesOf(template, 'Custom::VpcRestrictDefaultSG') as [[string, Resource]];
    const [[vpcId]] = resourcesOf(template, 'AWS::EC2::VPC') as [[string, Resource]];
    expect(strip.Properties.DefaultSecurityGroupId).toEqual({
      'Fn::GetAtt': [vpcId, 'DefaultSecurityGroup'],
    });
  });

  it('offers a NAT gateway instead, as an option', () => {
    dev.template.resourceCountIs('AWS::EC2::NatGateway', 1);
    // The NAT gateway replaces the interface endpoints; the free DynamoDB and S3 gateway endpoints stay.
    const endpoints = resources('AWS::EC2::VPCEndpoint', dev.template);
    expect(endpoints.map((e) => e.Properties.VpcEndpointType)).toEqual(['Gateway', 'Gateway']);
  });

  it('places subnets by AZ id from chat:availabilityZones, never by Fn::GetAZs index', () => {
    const subnets = resources('AWS::EC2::Subnet', pinned.template);
    expect(subnets.map((s) => s.Properties.AvailabilityZoneId)).toEqual(['euw1-az1', 'euw1-az3']);
    for (const subnet of subnets) expect(subnet.Properties.AvailabilityZone).toBeUndefined();
    expect(JSON.stringify(pinned.template.toJSON())).not.toContain('Fn::GetAZs');
    // Without the key the Region's first two AZ names are used (the documented default).
    expect(resources('AWS::EC2::Subnet').map((s) => JSON.stringify(s.Properties.AvailabilityZone))).toEqual([
      expect.stringContaining('Fn::GetAZs'),
      expect.stringContaining('Fn::GetAZs'),
    ]);
  });

  it('refuses chat:production=true without pinned AZs (the first two AZ names may lack an endpoint service or the cache)', () => {
    const unpinned = synth({ production: true, alarmEmail: 'oncall@example.com' });
    expect(unpinned.messages('error')).toEqual([
      { path: 'StreamingChat/Network', text: expect.stringContaining('needs chat:availabilityZones') },
    ]);
    expect(pinned.messages('error')).toEqual([]);
  });

  it('takes AZ names too, when the stack has a Region', () => {
    const { template: named, failure } = synth(
      { region: 'us-east-1', availabilityZones: 'us-east-1a,us-east-1c' },
      { region: 'us-east-1' },
    );
    expect(failure).toBeUndefined();
    expect(resources('AWS::EC2::Subnet', named).map((s) => s.Properties.AvailabilityZone)).toEqual([
      'us-east-1a',
      'us-east-1c',
    ]);
  });

  it('runs the stream function in the VPC and leaves the consumer and the deploy-time functions out of it', () => {
    expect(fnByDescription('Streams chat').Properties.VpcConfig).toBeDefined();
    expect(fnByDescription('Persists chat').Properties.VpcConfig).toBeUndefined();
    for (const text of [
      'fetches the user pool JWKS',
      'refreshes the stream',
      'invokes the configured Bedrock model',
    ])
      expect(fnByDescription(text).Properties.VpcConfig, text).toBeUndefined();
  });
});

describe('cache', () => {
  it('is ElastiCache Serverless Valkey, reachable on 6379-6380 from the stream function only', () => {
    template.hasResourceProperties('AWS::ElastiCache::ServerlessCache', {
      Engine: 'valkey',
      MajorEngineVersion: '8',
    });
    const cacheGroups = resourcesOf(template, 'AWS::EC2::SecurityGroup').filter(([id]) =>
      id.startsWith('Cache'),
    );
    expect(cacheGroups).toHaveLength(1);
    const ingress = ((cacheGroups[0]?.[1] as Resource | undefined)?.Properties.SecurityGroupIngress ??
      []) as Array<Record<string, unknown>>;
    expect(ingress).toHaveLength(1);
    expect(ingress[0]).toMatchObject({ FromPort: 6379, ToPort: 6380, IpProtocol: 'tcp' });
    const stream = fnByDescription('Streams chat').Properties;
    expect(JSON.stringify(ingress[0]?.SourceSecurityGroupId)).toBe(
      JSON.stringify((stream.VpcConfig as { SecurityGroupIds: unknown[] }).SecurityGroupIds[0]),
    );
    expect((stream.Environment as { Variables: Record<string, unknown> }).Variables).toMatchObject({
      REDIS_CLUSTER: 'true',
    });
    expect(
      JSON.stringify((stream.Environment as { Variables: Record<string, unknown> }).Variables.REDIS_URL),
    ).toContain('rediss://');
  });

  it('has usage limits from context (defaults 1 GB, 5000 ECPU/s)', () => {
    template.hasResourceProperties('AWS::ElastiCache::ServerlessCache', {
      CacheUsageLimits: { DataStorage: { Maximum: 1, Unit: 'GB' }, ECPUPerSecond: { Maximum: 5000 } },
    });
    pinned.template.hasResourceProperties('AWS::ElastiCache::ServerlessCache', {
      CacheUsageLimits: { DataStorage: { Maximum: 10, Unit: 'GB' }, ECPUPerSecond: { Maximum: 20000 } },
    });
  });

  it('admits only an IAM-authenticated user, which the stream function may connect as and is told to use', () => {
    const [[userId, user]] = resourcesOf(template, 'AWS::ElastiCache::User') as [[string, Resource]];
    expect(resourcesOf(template, 'AWS::ElastiCache::User')).toHaveLength(1);
    expect(user.Properties).toMatchObject({ Engine: 'valkey', AuthenticationMode: { Type: 'iam' } });
    // IAM authentication requires the user id and the user name to be the same.
    expect(user.Properties.UserName).toBe(user.Properties.UserId);
    expect(String(user.Properties.UserName)).toMatch(/^chat-stream-[0-9a-f]{8}$/);
    const [[groupId, group]] = resourcesOf(template, 'AWS::ElastiCache::UserGroup') as [[string, Resource]];
    expect(group.Properties).toMatchObject({ Engine: 'valkey', UserIds: [user.Properties.UserId] });
    const [[cacheId, cache]] = resourcesOf(template, 'AWS::ElastiCache::ServerlessCache') as [
      [string, Resource],
    ];
    expect(cache.Properties.UserGroupId).toEqual({ Ref: groupId });
    const env = envOf(fnByDescription('Streams chat'));
    expect(env).toMatchObject({
      REDIS_AUTH: 'iam',
      REDIS_USER: user.Properties.UserName,
      REDIS_CACHE_NAME: cache.Properties.ServerlessCacheName,
    });
    const connect = statementsOf(template, 'ChatStream').filter((s) =>
      s.actions.includes('elasticache:Connect'),
    );
    expect(connect).toHaveLength(1);
    expect(connect[0]?.actions).toEqual(['elasticache:Connect']);
    expect(connect[0]?.Resource).toEqual(
      expect.arrayContaining([{ 'Fn::GetAtt': [userId, 'Arn'] }, { 'Fn::GetAtt': [cacheId, 'ARN'] }]),
    );
    expect(statementsOf(template, 'Persist').flatMap((s) => s.actions)).not.toContain('elasticache:Connect');
  });
});

describe('data', () => {
  it('is one on-demand table with PITR, TTL and deletion protection, keyed like the local stack', () => {
    const [table] = resources('AWS::DynamoDB::GlobalTable');
    expect(table?.Properties).toMatchObject({
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [
        { AttributeName: TABLE_KEYS.partitionKey, KeyType: 'HASH' },
        { AttributeName: TABLE_KEYS.sortKey, KeyType: 'RANGE' },
      ],
      TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true },
      Replicas: [
        expect.objectContaining({
          PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
          DeletionProtectionEnabled: true,
        }),
      ],
    });
    template.hasResource('AWS::DynamoDB::GlobalTable', { DeletionPolicy: 'Retain' });
  });

  it('has the sessions-by-activity index exactly as the runtime contract defines it (the local stack creates the same)', () => {
    const [table] = resources('AWS::DynamoDB::GlobalTable');
    const contract = tableDefinition('unused');
    expect(table?.Properties.GlobalSecondaryIndexes).toEqual(contract.GlobalSecondaryIndexes);
    expect(
      new Set(
        table?.Properties.AttributeDefinitions as Array<{ AttributeName: string; AttributeType: string }>,
      ),
    ).toEqual(new Set(contract.AttributeDefinitions));
    expect(contract.GlobalSecondaryIndexes.map((index) => index.IndexName)).toEqual([ACTIVITY_INDEX.name]);
  });

  it('takes deletion protection and the removal policy from context', () => {
    dev.template.hasResource('AWS::DynamoDB::GlobalTable', {
      DeletionPolicy: 'Delete',
      Properties: Match.objectLike({ Replicas: [Match.objectLike({ DeletionProtectionEnabled: false })] }),
    });
  });

  it('keeps chat text for chat:messageTtlDays (default 365) and tells both functions', () => {
    for (const text of ['Streams chat', 'Persists chat'])
      expect(envOf(fnByDescription(text)).MESSAGE_TTL_DAYS).toBe(String(DEFAULT_CONFIG.messageTtlDays));
    expect(DEFAULT_CONFIG.messageTtlDays).toBe(365);
  });
});

describe('queue', () => {
  it('is FIFO without content dedup, encrypted, with a FIFO DLQ after 5 receives and a long enough visibility timeout', () => {
    const queues = resources('AWS::SQS::Queue');
    const main = queues.find((q) => q.Properties.RedrivePolicy);
    const dlq = queues.find((q) => !q.Properties.RedrivePolicy);
    expect(main?.Properties).toMatchObject({
      FifoQueue: true,
      ContentBasedDeduplication: false,
      SqsManagedSseEnabled: true,
      RedrivePolicy: { maxReceiveCount: 5 },
    });
    expect(main?.Properties.VisibilityTimeout).toBeGreaterThanOrEqual(
      6 * QUEUE_SETTINGS.consumerTimeoutSeconds,
    );
    expect(main?.Properties.VisibilityTimeout).toBe(QUEUE_SETTINGS.visibilityTimeoutSeconds);
    expect(fnByDescription('Persists chat').Properties.Timeout).toBe(QUEUE_SETTINGS.consumerTimeoutSeconds);
    expect(dlq?.Properties).toMatchObject({ FifoQueue: true, SqsManagedSseEnabled: true });
    const policies = resources('AWS::SQS::QueuePolicy').map((p) => JSON.stringify(p.Properties));
    expect(policies.filter((p) => p.includes('aws:SecureTransport'))).toHaveLength(2);
  });

  it('runs in FIFO high-throughput mode (dedup and limit per conversation)', () => {
    const main = resources('AWS::SQS::Queue').find((q) => q.Properties.RedrivePolicy);
    expect(main?.Properties).toMatchObject({
      DeduplicationScope: 'messageGroup',
      FifoThroughputLimit: 'perMessageGroupId',
    });
  });
});

describe('functions', () => {
  it("are nodejs24.x on arm64 with bundled ESM code (all but CDK's own: two Provider framework functions and the default-SG stripper)", () => {
    const functions = resources('AWS::Lambda::Function');
    const ours = functions.filter((f) => !isFramework(f));
    expect(ours).toHaveLength(6);
    expect(functions.filter(isFramework)).toHaveLength(4);
    for (const fn of ours) {
      expect(fn.Properties).toMatchObject({
        Runtime: 'nodejs24.x',
        Architectures: ['arm64'],
        Handler: 'index.handler',
      });
    }
  });

  it('gives the stream function a RESPONSE_STREAM Function URL with auth in the function and CORS from the contract and context', () => {
    const [url] = resources('AWS::Lambda::Url');
    expect(url?.Properties).toEqual({
      AuthType: 'NONE',
      InvokeMode: 'RESPONSE_STREAM',
      TargetFunctionArn: expect.anything(),
      Cors: {
        AllowOrigins: ['https://chat.example.com'],
        AllowMethods: [...CORS_SETTINGS.allowMethods],
        AllowHeaders: [...CORS_SETTINGS.allowHeaders],
        ExposeHeaders: [...CORS_SETTINGS.exposeHeaders],
        MaxAge: CORS_SETTINGS.maxAgeSeconds,
      },
    });
    expect(CORS_SETTINGS.allowMethods).toEqual(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']);
    const stream = fnByDescription('Streams chat').Properties;
    expect(stream).toMatchObject({
      MemorySize: DEFAULT_CONFIG.streamMemoryMb,
      Timeout: DEFAULT_CONFIG.streamTimeoutSeconds,
    });
    const env = (stream.Environment as { Variables: Record<string, unknown> }).Variables;
    expect(env).toMatchObject({
      MODEL_ID: DEFAULT_CONFIG.modelId,
      KNOWLEDGE_BASE_ID: 'KB12345678',
      FLUSH_PADDING_BYTES: '16384',
      AUTH_JWKS: { 'Fn::GetAtt': [expect.stringMatching(/^AuthJwks/), 'Jwks'] },
    });
    for (const key of ['TABLE_NAME', 'QUEUE_URL', 'AUTH_ISSUER', 'AUTH_AUDIENCE'])
      expect(env[key]).toBeDefined();
  });

  it('takes its defaults from the shared contracts: model, padding, size, model deadline, AWS client timeouts', () => {
    expect(DEFAULT_CONFIG).toMatchObject({
      modelId: DEFAULTS.modelId,
      flushPaddingBytes: DEFAULTS.flushPaddingBytes,
      streamTimeoutSeconds: DEFAULTS.streamTimeoutSeconds,
      streamMemoryMb: DEFAULTS.streamMemoryMb,
    });
    expect(envOf(fnByDescription('Streams chat'))).toMatchObject({
      MODEL_TIMEOUT_MS: String(modelTimeoutMs(DEFAULTS.streamTimeoutSeconds)),
      AWS_CONNECT_TIMEOUT_MS: String(DEFAULTS.awsConnectTimeoutMs),
      AWS_REQUEST_TIMEOUT_MS: String(DEFAULTS.awsRequestTimeoutMs),
    });
    expect(envOf(fnByDescription('Streams chat', dev.template)).MODEL_TIMEOUT_MS).toBe(
      String(modelTimeoutMs(300)),
    );
  });

  it('passes the per-user limits from context (defaults 10 turns a minute, 3 streams, 200000 tokens a day; 0 = off)', () => {
    const limits = (from: Template) => {
      const env = envOf(fnByDescription('Streams chat', from));
      return [env.LIMIT_TURNS_PER_MINUTE, env.LIMIT_CONCURRENT_STREAMS, env.LIMIT_TOKENS_PER_DAY];
    };
    expect(limits(template)).toEqual(['10', '3', '200000']);
    expect(limits(pinned.template)).toEqual(['30', '5', '1000000']);
    expect(limits(dev.template)).toEqual(['0', '0', '0']);
    expect(DEFAULT_CONFIG).toMatchObject({
      limitTurnsPerMinute: 10,
      limitConcurrentStreams: 3,
      limitTokensPerDay: 200_000,
    });
  });

  it('takes memory, timeout and origins from context', () => {
    dev.template.hasResourceProperties('AWS::Lambda::Function', { MemorySize: 2048, Timeout: 300 });
    const url = resources('AWS::Lambda::Url', dev.template)[0] as Resource;
    expect(url.Properties.Cors).toBeUndefined();
  });

  it('reserves concurrency for the stream function (default 100, from context, "none" leaves it unreserved)', () => {
    expect(fnByDescription('Streams chat').Properties.ReservedConcurrentExecutions).toBe(100);
    expect(fnByDescription('Streams chat', pinned.template).Properties.ReservedConcurrentExecutions).toBe(
      250,
    );
    expect(
      fnByDescription('Streams chat', dev.template).Properties.ReservedConcurrentExecutions,
    ).toBeUndefined();
    expect(fnByDescription('Persists chat').Properties.ReservedConcurrentExecutions).toBeUndefined();
  });

  it("checks the account's unreserved concurrency at deploy time, before the VPC, the cache and the function", () => {
    const [[checkId, check]] = resourcesOf(template, 'Custom::ConcurrencyHeadroom') as [[string, Resource]];
    expect(check.Properties.ReservedConcurrency).toBe(100);
    const [[, pinnedCheck]] = resourcesOf(pinned.template, 'Custom::ConcurrencyHeadroom') as [
      [string, Resource],
    ];
    expect(pinnedCheck.Properties.ReservedConcurrency).toBe(250);
    for (const type of ['AWS::EC2::VPC', 'AWS::ElastiCache::ServerlessCache'])
      for (const [id, resource] of resourcesOf(template, type))
        expect(resource.DependsOn ?? [], id).toContain(checkId);
    expect(template.toJSON().Resources[fnId('Streams chat')].DependsOn).toContain(checkId);
    // The checker reads account settings and nothing else (the Provider framework only invokes it).
    expect(statementsOf(template, 'ConcurrencyHeadroomFunction').flatMap((s) => s.actions)).toEqual([
      'lambda:GetAccountSettings',
    ]);
    // Nothing reserved, nothing to check.
    expect(resourcesOf(dev.template, 'Custom::ConcurrencyHeadroom')).toEqual([]);
  });

  it('maps stack traces back to the TypeScript with source maps', () => {
    for (const fn of resources('AWS::Lambda::Function').filter((f) => !isFramework(f))) {
      expect(envOf(fn).NODE_OPTIONS).toBe('--enable-source-maps');
      expect(
        existsSync(join(main.outdir, fn.Metadata?.['aws:asset:path'] ?? 'missing', 'index.mjs.map')),
      ).toBe(true);
    }
  });

  it('feeds the consumer from SQS in batches of 10 with partial batch responses, at most 20 batches at once as locally', () => {
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      BatchSize: QUEUE_SETTINGS.batchSize,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ScalingConfig: { MaximumConcurrency: QUEUE_SETTINGS.maxConcurrency },
    });
    expect(QUEUE_SETTINGS).toMatchObject({ batchSize: 10, maxConcurrency: 20 });
  });

  it('carries the asset metadata sam local invoke needs (every function we bundle)', () => {
    for (const fn of resources('AWS::Lambda::Function').filter((f) => !isFramework(f))) {
      expect(fn.Metadata?.['aws:asset:property']).toBe('Code');
      expect(existsSync(join(main.outdir, fn.Metadata?.['aws:asset:path'] ?? 'missing', 'index.mjs'))).toBe(
        true,
      );
    }
  });
});

describe('guardrails', () => {
  it('passes the guardrail id, version and stream mode to the stream function', () => {
    expect(envOf(fnByDescription('Streams chat', pinned.template))).toMatchObject({
      GUARDRAIL_ID: 'gr1abc2def3',
      GUARDRAIL_VERSION: '3',
      GUARDRAIL_STREAM_MODE: 'async',
    });
    const env = envOf(fnByDescription('Streams chat'));
    for (const key of ['GUARDRAIL_ID', 'GUARDRAIL_VERSION', 'GUARDRAIL_STREAM_MODE'])
      expect(env[key]).toBeUndefined();
  });

  it('grants ApplyGuardrail on the guardrail and on its cross-Region profile in every Region, and nothing without one', () => {
    const apply = statementsOf(pinned.template, 'ChatStream').filter((s) =>
      s.actions.includes('bedrock:ApplyGuardrail'),
    );
    expect(apply).toHaveLength(1);
    expect(apply[0]?.actions).toEqual(['bedrock:ApplyGuardrail']);
    expect(apply[0]?.resource).toContain(':bedrock:eu-west-1:');
    expect(apply[0]?.resource).toContain(':guardrail/gr1abc2def3');
    expect(apply[0]?.resource).toContain(':bedrock:*:');
    expect(apply[0]?.resource).toContain(':guardrail-profile/eu.guardrail.v1:0');
    expect(JSON.stringify(template.toJSON())).not.toContain('bedrock:ApplyGuardrail');
  });
});

describe('auth', () => {
  it('has a deletion-protected user pool, an app client, and the JWKS fetched at deploy time through the Provider framework', () => {
    template.resourceCountIs('AWS::Cognito::UserPool', 1);
    template.hasResourceProperties('AWS::Cognito::UserPool', { DeletionProtection: 'ACTIVE' });
    template.hasResourceProperties('AWS::Cognito::UserPoolClient', { GenerateSecret: false });
    // SRP for apps, admin password auth for the CLI; USER_PASSWORD_AUTH only with the hosted page; no OAuth.
    const [client] = resources('AWS::Cognito::UserPoolClient');
    expect([...((client?.Properties.ExplicitAuthFlows ?? []) as string[])].sort()).toEqual([
      'ALLOW_ADMIN_USER_PASSWORD_AUTH',
      'ALLOW_REFRESH_TOKEN_AUTH',
      'ALLOW_USER_SRP_AUTH',
    ]);
    expect(client?.Properties.AllowedOAuthFlows).toBeUndefined();
    expect(client?.Properties.CallbackURLs).toBeUndefined();
    template.hasResourceProperties('Custom::Jwks', {
      JwksUrl: Match.objectLike({ 'Fn::Join': Match.anyValue() }),
      ServiceToken: { 'Fn::GetAtt': [Match.stringLikeRegexp('^AuthJwksProviderframeworkonEvent'), 'Arn'] },
    });
  });

  it('fetches the JWKS again on every deploy, even under a pinned chat:deployNonce, and every 15 minutes between deploys (review N11)', () => {
    const [[, jwks]] = resourcesOf(template, 'Custom::Jwks') as [[string, Resource]];
    // The synths pin chat:deployNonce (the probe's); the JWKS nonce is the time of the synth all the same,
    // so a pinned deploy never re-sends the template's old AUTH_JWKS over keys the refresh wrote.
    expect(jwks.Properties.DeployNonce).not.toBe(TEST_NONCE);
    expect(Date.now() - Date.parse(String(jwks.Properties.DeployNonce))).toBeLessThan(10 * 60_000);
    const [[, probe]] = resourcesOf(template, 'Custom::ModelProbe') as [[string, Resource]];
    expect(probe.Properties.DeployNonce).toBe(TEST_NONCE);
    const [[, schedule]] = resourcesOf(template, 'AWS::Events::Rule') as [[string, Resource]];
    expect(schedule.Properties.ScheduleExpression).toBe('rate(15 minutes)');
    const [[refreshId]] = resourcesOf(template, 'AWS::Lambda::Function').filter(([id]) =>
      id.startsWith('AuthJwksRefresh'),
    ) as [[string, Resource]];
    expect(JSON.stringify(schedule.Properties.Targets)).toContain(refreshId);
    // chat:jwksRefreshMinutes=0 turns the schedule off (the function stays for the manual runbook).
    expect(resourcesOf(dev.template, 'AWS::Events::Rule')).toEqual([]);
  });

  it('lets the refresh function read and rewrite only the stream function configuration, with the pinned Lambda client bundled', () => {
    const refresh = statementsOf(template, 'AuthJwksRefresh');
    expect(refresh).toHaveLength(1);
    expect(refresh[0]?.actions).toEqual([
      'lambda:GetFunctionConfiguration',
      'lambda:UpdateFunctionConfiguration',
    ]);
    expect(refresh[0]?.Resource).toEqual({
      'Fn::GetAtt': [expect.stringMatching(/^ChatStreamFunction/), 'Arn'],
    });
    const fn = fnByDescription('refreshes the stream');
    expect(envOf(fn)).toMatchObject({
      TARGET_FUNCTION_NAME: { Ref: expect.stringMatching(/^ChatStreamFunction/) },
      JWKS_URL: expect.anything(),
    });
    const bundle = readFileSync(
      join(main.outdir, fn.Metadata?.['aws:asset:path'] ?? '', 'index.mjs'),
      'utf8',
    );
    // The Lambda client is bundled at the pinned version, not imported from the runtime's copy (one too
    // old to know PublishTo would publish a numbered version Managed Instances never run).
    expect(bundle).not.toMatch(/from\s*["']@aws-sdk\/client-lambda["']/);
    expect(bundle).toContain('LATEST_PUBLISHED');
  });
});

describe('least-privilege IAM', () => {
  it('lets the stream function use the table, send to the queue, invoke the model and retrieve, never with a wildcard action', () => {
    const stream = statementsOf(template, 'ChatStream');
    const actions = stream.flatMap((s) => s.actions);
    expect(actions.filter((a) => a.includes('*'))).toEqual([]);
    expect(actions.filter((a) => a.startsWith('dynamodb:') && !a.match(/^dynamodb:[A-Z][A-Za-z]+$/))).toEqual(
      [],
    );
    expect(stream.filter((s) => s.actions.some((a) => a.startsWith('sqs:')))).toEqual([
      expect.objectContaining({ actions: ['sqs:SendMessage'], resource: expect.stringContaining('Queue') }),
    ]);
    const invoke = stream.filter((s) => s.actions.includes('bedrock:InvokeModelWithResponseStream'));
    expect(invoke.map((s) => s.resource).join(' ')).toContain(`inference-profile/${DEFAULT_CONFIG.modelId}`);
    expect(invoke.map((s) => s.resource).join(' ')).toContain(
      'foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0',
    );
    expect(stream.find((s) => s.actions.includes('bedrock:Retrieve'))?.resource).toContain(
      'knowledge-base/KB12345678',
    );
  });

  // Each DynamoDB statement of a role, as actions per resource (the table's ARN or its index's).
  const tableGrants = (from: Template, role: string) =>
    statementsOf(from, role)
      .filter((s) => s.actions.some((a) => a.startsWith('dynamodb:')))
      .map((s) => ({ actions: [...s.actions].sort(), resource: s.Resource }));
  const tableArn = (from: Template) => {
    const [[id]] = resourcesOf(from, 'AWS::DynamoDB::GlobalTable') as [[string, Resource]];
    return { 'Fn::GetAtt': [id, 'Arn'] };
  };

  it('grants the stream function exactly what its routes call: item reads (one batch for a search) and writes, session and user erasure, and Query on the activity index', () => {
    expect(tableGrants(template, 'ChatStream')).toEqual([
      {
        actions: [
          'dynamodb:BatchGetItem',
          'dynamodb:BatchWriteItem',
          'dynamodb:DeleteItem',
          'dynamodb:GetItem',
          'dynamodb:PutItem',
          'dynamodb:Query',
          'dynamodb:UpdateItem',
        ],
        resource: tableArn(template),
      },
      {
        actions: ['dynamodb:Query'],
        resource: { 'Fn::Join': ['', [tableArn(template), `/index/${ACTIVITY_INDEX.name}`]] },
      },
    ]);
    // No Scan, no transactions, no table-level administration anywhere.
    const all = JSON.stringify(template.toJSON());
    for (const action of ['dynamodb:Scan', 'dynamodb:Transact', 'dynamodb:DeleteTable', 'dynamodb:*'])
      expect(all).not.toContain(action);
  });

  it('gives no Retrieve permission and no knowledge base when none is configured', () => {
    expect(JSON.stringify(dev.template.toJSON())).not.toContain('bedrock:Retrieve');
    expect(JSON.stringify(dev.template.toJSON())).not.toContain('KNOWLEDGE_BASE_ID');
  });

  it('lets the consumer read, write and delete items of the table only (never the index), and invoke only its title model with Converse', () => {
    expect(tableGrants(template, 'Persist')).toEqual([
      {
        actions: [
          'dynamodb:DeleteItem',
          'dynamodb:GetItem',
          'dynamodb:PutItem',
          'dynamodb:Query',
          'dynamodb:UpdateItem',
        ],
        resource: tableArn(template),
      },
    ]);
    const persist = statementsOf(template, 'Persist');
    const bedrock = persist.filter((s) => s.actions.some((a) => a.startsWith('bedrock:')));
    // Same model as the chat by default, so the same resources as the stream role's, InvokeModel only.
    const streamInvoke = statementsOf(template, 'ChatStream').filter((s) =>
      s.actions.includes('bedrock:InvokeModelWithResponseStream'),
    );
    expect(bedrock.map((s) => s.actions)).toEqual(bedrock.map(() => ['bedrock:InvokeModel']));
    expect(bedrock.map((s) => s.Resource)).toEqual(streamInvoke.map((s) => s.Resource));
    expect(bedrock.map((s) => s.Condition)).toEqual(streamInvoke.map((s) => s.Condition));
    expect(envOf(fnByDescription('Persists chat'))).toMatchObject({
      TITLES: 'true',
      TITLE_MODEL_ID: DEFAULT_CONFIG.modelId,
    });
  });

  it('grants and probes a title model of its own (chat:titleModelId), and grants nothing with chat:titles=false', () => {
    const persist = statementsOf(pinned.template, 'Persist').filter((s) =>
      s.actions.some((a) => a.startsWith('bedrock:')),
    );
    expect(persist.length).toBeGreaterThan(0);
    for (const s of persist) {
      expect(s.actions).toEqual(['bedrock:InvokeModel']);
      expect(s.resource).toContain('nova-micro');
      expect(s.resource).not.toContain('claude');
    }
    expect(envOf(fnByDescription('Persists chat', pinned.template))).toMatchObject({
      TITLES: 'true',
      TITLE_MODEL_ID: 'eu.amazon.nova-micro-v1:0',
    });
    // Probed at deploy time like the chat model, before the consumer exists.
    const probes = Object.entries(pinned.template.findResources('Custom::ModelProbe')) as Array<
      [string, Resource]
    >;
    expect(probes.map(([, p]) => p.Properties.ModelId).sort()).toEqual([
      'eu.amazon.nova-micro-v1:0',
      PINNED.modelId,
    ]);
    const titleProbe = probes.find(([, p]) => p.Properties.ModelId === 'eu.amazon.nova-micro-v1:0')?.[0];
    const [[, consumer]] = resourcesOf(pinned.template, 'AWS::Lambda::Function').filter(([, f]) =>
      String(f.Properties.Description).includes('Persists chat'),
    ) as [[string, Resource]];
    expect(consumer.DependsOn).toContain(titleProbe);
    expect(
      statementsOf(pinned.template, 'ModelProbe')
        .filter((s) => s.actions.includes('bedrock:InvokeModel'))
        .map((s) => s.resource)
        .join(' '),
    ).toContain('nova-micro');
    // Titles off: the first words stay the title, and the consumer may invoke no model at all.
    expect(envOf(fnByDescription('Persists chat', dev.template)).TITLES).toBe('false');
    expect(envOf(fnByDescription('Persists chat', dev.template)).TITLE_MODEL_ID).toBeUndefined();
    expect(
      statementsOf(dev.template, 'Persist').filter((s) => s.actions.some((a) => a.startsWith('bedrock:'))),
    ).toEqual([]);
  });

  it('keeps Marketplace subscription on the probe role, scoped by product id when given', () => {
    for (const fragment of ['ChatStream', 'Persist', 'AuthJwks'])
      expect(
        statementsOf(template, fragment)
          .flatMap((s) => s.actions)
          .join(' '),
      ).not.toContain('aws-marketplace');
    const probe = statementsOf(pinned.template, 'ModelProbe');
    expect(probe.find((s) => s.actions.includes('aws-marketplace:Subscribe'))).toMatchObject({
      actions: ['aws-marketplace:Subscribe', 'aws-marketplace:Unsubscribe'],
      Resource: '*',
      Condition: { 'ForAnyValue:StringEquals': { 'aws-marketplace:ProductId': ['prod-abc123xyz'] } },
    });
    expect(probe.find((s) => s.actions.includes('aws-marketplace:ViewSubscriptions'))).toMatchObject({
      actions: ['aws-marketplace:ViewSubscriptions', 'bedrock:GetFoundationModelAvailability'],
      Resource: '*',
    });
    expect(
      probe.find((s) => s.actions.includes('aws-marketplace:ViewSubscriptions'))?.Condition,
    ).toBeUndefined();
  });

  it('probes through the guardrail the turns use, with ApplyGuardrail on the same resources as the stream role', () => {
    const [[, probe]] = resourcesOf(pinned.template, 'Custom::ModelProbe').filter(([id]) =>
      id.startsWith('ModelInvoke'),
    ) as [[string, Resource]];
    expect(probe.Properties).toMatchObject({ GuardrailId: 'gr1abc2def3', GuardrailVersion: '3' });
    const guardrailOf = (role: string) =>
      statementsOf(pinned.template, role).find((s) => s.actions.includes('bedrock:ApplyGuardrail'))?.Resource;
    expect(guardrailOf('ModelProbe')).toBeDefined();
    expect(guardrailOf('ModelProbe')).toEqual(guardrailOf('ChatStream'));
    expect(JSON.stringify(guardrailOf('ModelProbe'))).toContain('guardrail-profile/eu.guardrail.v1:0');
    // The title probe goes without: titles do not pass the guardrail.
    const [[, title]] = resourcesOf(pinned.template, 'Custom::ModelProbe').filter(([id]) =>
      id.startsWith('ModelInvokeTitle'),
    ) as [[string, Resource]];
    expect(title.Properties.GuardrailId).toBeUndefined();
  });
});

describe('observability', () => {
  it('keeps logs with a retention', () => {
    const groups = resources('AWS::Logs::LogGroup');
    expect(groups.length).toBeGreaterThanOrEqual(4);
    for (const group of groups)
      expect(group.Properties.RetentionInDays).toBe(DEFAULT_CONFIG.logRetentionDays);
  });

  it('outputs what a client and an operator need', () => {
    const outputs = Object.keys(template.findOutputs('*'));
    for (const name of [
      'FunctionUrl',
      'UserPoolId',
      'UserPoolClientId',
      'TableName',
      'QueueUrl',
      'DashboardUrl',
      'AlarmTopicArn',
      'JwksRefreshFunctionName',
      'StreamFunctionName',
    ]) {
      expect(outputs).toContain(name);
    }
  });
});

describe('cdk-nag AwsSolutions', () => {
  // Every configuration whose grants differ: each model id form, a knowledge base, a guardrail profile.
  const configurations: Array<[string, Synthesized]> = [];
  beforeAll(() => {
    configurations.push(
      ['knowledge base', synth({ knowledgeBaseId: 'KB12345678' }, { nag: true })],
      ['pinned production stage', pinned],
      [
        'global profile',
        synth({ modelId: 'global.anthropic.claude-sonnet-4-5-20250929-v1:0' }, { nag: true }),
      ],
      ['foundation model', synth({ modelId: 'amazon.nova-lite-v1:0', natGateway: true }, { nag: true })],
      [
        'application profile',
        synth(
          { modelId: 'arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6' },
          { nag: true, region: 'us-east-1' },
        ),
      ],
    );
  }, 60_000);

  it('reports zero unacknowledged findings', () => {
    for (const [name, result] of configurations) {
      const findings = nagReportFindings(result);
      expect(findings, name).toEqual([]);
      expect(result.failure, name).toBeUndefined();
    }
  });

  it('checks every acknowledgement: it gives a reason and matches a finding cdk-nag raises on that construct or below', () => {
    for (const [name, result] of configurations) {
      const audit = auditAcknowledgements(result.stack);
      expect(audit.acknowledged, name).toBeGreaterThan(0);
      expect(audit, name).toMatchObject({
        withoutReason: [],
        unmatched: [],
        unacknowledged: [],
        foreign: [],
      });
    }
  });

  it('catches an acknowledgement that matches no finding and one without a reason (the audit is live)', () => {
    const app = new App({ outdir: main.outdir });
    const stack = new Stack(app, 'Control');
    const queue = new Queue(stack, 'Plain', { enforceSSL: true });
    Validations.of(queue).acknowledge(
      { id: 'AwsSolutions-SQS3', reason: 'short' },
      {
        id: 'AwsSolutions-SQS4',
        reason: 'TLS is enforced above, so this acknowledgement matches no finding.',
      },
    );
    expect(auditAcknowledgements(stack)).toMatchObject({
      withoutReason: ['AwsSolutions-SQS3 at Control/Plain'],
      unmatched: ['AwsSolutions-SQS4 at Control/Plain'],
      unacknowledged: [],
    });
  });

  it('does report a finding it has not been told about (the check is live)', () => {
    const app = new App({ outdir: main.outdir });
    const stack = new Stack(app, 'Control');
    new Queue(stack, 'Plain');
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    expect(() => app.synth()).toThrow(/AwsSolutions|SQS/);
  });
});

/** A bundled function's asset folder and the metafile esbuild wrote beside its bundle. */
const bundleOf = (description: string, from: Synthesized = main) => {
  const fn = fnByDescription(description, from.template);
  const dir = join(from.outdir, fn.Metadata?.['aws:asset:path'] ?? '');
  const meta = JSON.parse(readFileSync(join(dir, 'index.meta.json'), 'utf8')) as {
    inputs: Record<string, unknown>;
    outputs: Record<string, { bytes: number }>;
  };
  return { dir, meta };
};

/** The npm packages of the AWS SDK's credential providers an esbuild metafile says a function's bundle holds. */
const credentialProviders = (from: Synthesized, description: string) => {
  const { meta } = bundleOf(description, from);
  return [
    ...new Set(
      Object.keys(meta.inputs).flatMap(
        (file) => /@aws-sdk\/(credential-provider-[a-z-]+)\//.exec(file)?.[1] ?? [],
      ),
    ),
  ].sort();
};

describe('bundles', () => {
  it('hold only the environment credential provider on Lambda, and the whole default chain on Managed Instances', () => {
    for (const description of ['Streams chat', 'Persists chat'])
      expect(credentialProviders(main, description), description).toEqual(['credential-provider-env']);
    const managed = synth({ compute: 'managed-instances', streamMemoryMb: '2048' }, { bundle: true });
    expect(credentialProviders(managed, 'Streams chat')).toEqual(
      expect.arrayContaining([
        'credential-provider-env',
        'credential-provider-ini',
        'credential-provider-node',
        'credential-provider-sso',
      ]),
    );
  }, 120_000);

  it('keeps the stream bundle under 1 MB (esbuild metafile; the source map ships beside it and is not loaded as code)', () => {
    const { dir, meta } = bundleOf('Streams chat');
    const code = Object.entries(meta.outputs).filter(([file]) => !file.endsWith('.map'));
    expect(code).toHaveLength(1);
    const bytes = code.reduce((sum, [, o]) => sum + o.bytes, 0);
    expect(bytes).toBe(statSync(join(dir, 'index.mjs')).size);
    expect(bytes).toBeLessThanOrEqual(1024 * 1024);
  });
});
