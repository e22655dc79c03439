import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { Queue } from 'aws-cdk-lib/aws-sqs';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { ChatStack } from '../../lib/chat-stack.ts';
import { type ChatStackConfig, DEFAULT_CONFIG } from '../../lib/config.ts';
import { QUEUE_SETTINGS } from '../../functions/contracts/queue.ts';
import { TABLE_KEYS, TTL_ATTRIBUTE } from '../../functions/contracts/table.ts';

// Offline: synthesizes the stack (local esbuild bundling) and checks the template, cdk-nag and the bundles.
function synth(overrides: Partial<ChatStackConfig> = {}, nag = false) {
  const outdir = mkdtempSync(join(tmpdir(), 'cdk-'));
  const app = new App({ outdir, context: { 'aws:cdk:enable-asset-metadata': true } });
  const stack = new ChatStack(app, 'StreamingChat', { config: { ...DEFAULT_CONFIG, ...overrides } });
  if (nag) Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  let failure: unknown;
  try {
    app.synth();
  } catch (error) {
    failure = error;
  }
  return { stack, outdir, failure, template: failure ? undefined : Template.fromStack(stack) };
}

type Resource = { Type: string; Properties: Record<string, unknown>; Metadata?: Record<string, string> };
let template: Template;
let outdir: string;
const resources = (type: string) => Object.values(template.findResources(type)) as Resource[];
const fnByDescription = (text: string) =>
  resources('AWS::Lambda::Function').find((f) => String(f.Properties.Description).includes(text)) as Resource;
const policyActions = (policyFragment: string) => {
  const statements = Object.entries(template.findResources('AWS::IAM::Policy'))
    .filter(([id]) => id.includes(policyFragment))
    .flatMap(
      ([, p]) =>
        (p as Resource).Properties.PolicyDocument as {
          Statement: Array<{ Action: string | string[]; Resource: unknown }>;
        },
    )
    .flatMap((d) => d.Statement);
  return statements.map((s) => ({ actions: [s.Action].flat(), resource: JSON.stringify(s.Resource) }));
};

beforeAll(() => {
  const result = synth({ knowledgeBaseId: 'KB12345678', allowedOrigins: ['https://chat.example.com'] });
  if (!result.template) throw result.failure;
  template = result.template;
  outdir = result.outdir;
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

  it('offers a NAT gateway instead, as an option', () => {
    const { template: withNat } = synth({ natGateway: true });
    withNat?.resourceCountIs('AWS::EC2::NatGateway', 1);
    // The NAT gateway replaces the interface endpoints; the free DynamoDB gateway endpoint stays.
    const endpoints = Object.values(withNat?.findResources('AWS::EC2::VPCEndpoint') ?? {}) as Resource[];
    expect(endpoints.map((e) => e.Properties.VpcEndpointType)).toEqual(['Gateway']);
  }, 120_000);

  it('runs the stream function in the VPC and leaves the consumer out of it', () => {
    expect(fnByDescription('Streams chat').Properties.VpcConfig).toBeDefined();
    expect(fnByDescription('Persists chat').Properties.VpcConfig).toBeUndefined();
  });
});

describe('cache', () => {
  it('is ElastiCache Serverless Valkey, reachable on 6379-6380 from the stream function only', () => {
    template.hasResourceProperties('AWS::ElastiCache::ServerlessCache', {
      Engine: 'valkey',
      MajorEngineVersion: '8',
    });
    const cacheGroups = Object.entries(template.findResources('AWS::EC2::SecurityGroup')).filter(([id]) =>
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

  it('takes deletion protection and the removal policy from context', () => {
    const { template: dev } = synth({ deletionProtection: false, removalPolicy: 'destroy' });
    dev?.hasResource('AWS::DynamoDB::GlobalTable', {
      DeletionPolicy: 'Delete',
      Properties: Match.objectLike({ Replicas: [Match.objectLike({ DeletionProtectionEnabled: false })] }),
    });
  }, 120_000);
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
    expect(fnByDescription('Persists chat').Properties.Timeout).toBe(QUEUE_SETTINGS.consumerTimeoutSeconds);
    expect(dlq?.Properties).toMatchObject({ FifoQueue: true, SqsManagedSseEnabled: true });
    const policies = resources('AWS::SQS::QueuePolicy').map((p) => JSON.stringify(p.Properties));
    expect(policies.filter((p) => p.includes('aws:SecureTransport'))).toHaveLength(2);
  });
});

describe('functions', () => {
  it('are nodejs24.x on arm64 with bundled ESM code', () => {
    for (const fn of resources('AWS::Lambda::Function').filter((f) => f.Properties.Runtime !== undefined)) {
      expect(fn.Properties).toMatchObject({
        Runtime: 'nodejs24.x',
        Architectures: ['arm64'],
        Handler: 'index.handler',
      });
    }
  });

  it('gives the stream function a RESPONSE_STREAM Function URL with auth in the function and CORS from context', () => {
    template.hasResourceProperties('AWS::Lambda::Url', {
      AuthType: 'NONE',
      InvokeMode: 'RESPONSE_STREAM',
      Cors: {
        AllowOrigins: ['https://chat.example.com'],
        AllowMethods: ['POST'],
        AllowHeaders: ['authorization', 'content-type'],
      },
    });
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

  it('takes memory, timeout and origins from context', () => {
    const { template: custom } = synth({
      streamMemoryMb: 2048,
      streamTimeoutSeconds: 300,
      allowedOrigins: [],
    });
    custom?.hasResourceProperties('AWS::Lambda::Function', { MemorySize: 2048, Timeout: 300 });
    const url = Object.values(custom?.findResources('AWS::Lambda::Url') ?? {})[0] as Resource;
    expect(url.Properties.Cors).toBeUndefined();
  }, 120_000);

  it('feeds the consumer from SQS in batches of 10 with partial batch responses', () => {
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      BatchSize: 10,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
  });

  it('carries the asset metadata sam local invoke needs', () => {
    for (const fn of resources('AWS::Lambda::Function')) {
      expect(fn.Metadata?.['aws:asset:property']).toBe('Code');
      expect(existsSync(join(outdir, fn.Metadata?.['aws:asset:path'] ?? 'missing', 'index.mjs'))).toBe(true);
    }
  });
});

describe('auth', () => {
  it('has a user pool, an app client, and the JWKS fetched at deploy time', () => {
    template.resourceCountIs('AWS::Cognito::UserPool', 1);
    template.hasResourceProperties('AWS::Cognito::UserPoolClient', { GenerateSecret: false });
    template.hasResourceProperties('AWS::CloudFormation::CustomResource', {
      JwksUrl: Match.objectLike({ 'Fn::Join': Match.anyValue() }),
    });
  });
});

describe('least-privilege IAM', () => {
  it('lets the stream function read the table, write only put/update, send to the queue, invoke the model and retrieve', () => {
    const stream = policyActions('ChatStream');
    const actions = stream.flatMap((s) => s.actions);
    expect(actions).toContain('dynamodb:GetItem');
    expect(actions).toContain('dynamodb:Query');
    expect(actions).not.toContain('dynamodb:DeleteItem');
    expect(actions.filter((a) => a.includes('*'))).toEqual([]);
    expect(stream.filter((s) => s.actions.some((a) => a.startsWith('sqs:')))).toEqual([
      { actions: ['sqs:SendMessage'], resource: expect.stringContaining('Queue') },
    ]);
    const invoke = stream.find((s) => s.actions.includes('bedrock:InvokeModelWithResponseStream'));
    expect(invoke?.resource).toContain(`inference-profile/${DEFAULT_CONFIG.modelId}`);
    expect(invoke?.resource).toContain('foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0');
    expect(stream.find((s) => s.actions.includes('bedrock:Retrieve'))?.resource).toContain(
      'knowledge-base/KB12345678',
    );
  });

  it('gives no Retrieve permission and no knowledge base when none is configured', () => {
    const { template: noKb } = synth();
    expect(JSON.stringify(noKb?.toJSON())).not.toContain('bedrock:Retrieve');
    expect(JSON.stringify(noKb?.toJSON())).not.toContain('KNOWLEDGE_BASE_ID');
  }, 120_000);

  it('lets the consumer put and update items only', () => {
    const persist = policyActions('Persist').flatMap((s) => s.actions);
    expect(persist).toEqual(expect.arrayContaining(['dynamodb:PutItem', 'dynamodb:UpdateItem']));
    expect(persist.filter((a) => a.startsWith('dynamodb:'))).toEqual([
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
    ]);
    expect(persist.filter((a) => a.startsWith('bedrock:'))).toEqual([]);
  });
});

describe('observability', () => {
  it('keeps logs with a retention', () => {
    const groups = resources('AWS::Logs::LogGroup');
    expect(groups.length).toBeGreaterThanOrEqual(4);
    for (const group of groups)
      expect(group.Properties.RetentionInDays).toBe(DEFAULT_CONFIG.logRetentionDays);
  });

  it('alarms on the seed thresholds and pipeline health, notifying an SNS topic', () => {
    const alarms = resources('AWS::CloudWatch::Alarm');
    const byMetric = (name: string) => alarms.find((a) => a.Properties.MetricName === name);
    expect(byMetric('TimeToFirstToken')?.Properties).toMatchObject({
      ExtendedStatistic: 'p99',
      Threshold: 1000,
      Namespace: 'StreamingChat',
    });
    expect(byMetric('TurnDuration')?.Properties).toMatchObject({ ExtendedStatistic: 'p99', Threshold: 3000 });
    const failedSaves = alarms.find((a) =>
      JSON.stringify(a.Properties.Metrics ?? '').includes('FailedBackgroundSaves'),
    );
    expect(failedSaves?.Properties.Threshold).toBe(5);
    expect(byMetric('ApproximateNumberOfMessagesVisible')?.Properties.Threshold).toBe(0);
    expect(byMetric('ApproximateAgeOfOldestMessage')?.Properties.Threshold).toBe(300);
    expect(alarms.filter((a) => a.Properties.MetricName === 'Errors')).toHaveLength(2);
    expect(alarms.filter((a) => a.Properties.MetricName === 'Throttles')).toHaveLength(2);
    for (const alarm of alarms) expect(JSON.stringify(alarm.Properties.AlarmActions)).toContain('Alarms');
    template.resourceCountIs('AWS::SNS::Topic', 1);
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
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
    ]) {
      expect(outputs).toContain(name);
    }
  });
});

describe('cdk-nag AwsSolutions', () => {
  it('has zero unacknowledged findings, and every acknowledgement names a resource and a reason', () => {
    const { failure, outdir: nagOut } = synth({ knowledgeBaseId: 'KB12345678' }, true);
    const report = JSON.parse(readFileSync(join(nagOut, 'validation-report.json'), 'utf8')) as {
      pluginReports: Array<{
        pluginName: string;
        violations: Array<{ ruleName: string; violatingConstructs: Array<{ constructPath: string }> }>;
      }>;
    };
    const findings = report.pluginReports.flatMap((p) =>
      p.violations.flatMap((v) => v.violatingConstructs.map((c) => `${v.ruleName} at ${c.constructPath}`)),
    );
    expect(findings).toEqual([]);
    expect(failure).toBeUndefined();
  }, 120_000);

  it('does report a finding it has not been told about (the check is live)', () => {
    const app = new App({ outdir: mkdtempSync(join(tmpdir(), 'cdk-')) });
    const stack = new Stack(app, 'Control');
    new Queue(stack, 'Plain');
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    expect(() => app.synth()).toThrow(/AwsSolutions|SQS/);
  });
});

describe('bundles', () => {
  it('keeps the stream bundle under 1 MB (esbuild metafile)', () => {
    const stream = fnByDescription('Streams chat');
    const dir = join(outdir, stream.Metadata?.['aws:asset:path'] ?? '');
    const meta = JSON.parse(readFileSync(join(dir, 'index.meta.json'), 'utf8')) as {
      outputs: Record<string, { bytes: number }>;
    };
    const bytes = Object.values(meta.outputs).reduce((sum, o) => sum + o.bytes, 0);
    expect(bytes).toBe(statSync(join(dir, 'index.mjs')).size);
    expect(bytes).toBeLessThanOrEqual(1024 * 1024);
  });
});
