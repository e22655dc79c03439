import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../functions/contracts/defaults.ts';
import {
  CONTEXT_KEYS,
  ConfigError,
  DEFAULT_CONFIG,
  LOG_RETENTION_DAYS,
  parseConfig,
  readConfig,
} from '../../lib/config.ts';

const rejects = (raw: Record<string, unknown>) => {
  try {
    parseConfig(raw);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  return expect.unreachable(`${JSON.stringify(raw)} was accepted`);
};

describe('infra context schema', () => {
  it('defaults to the shared contracts where runtime and infrastructure share a value', () => {
    expect(DEFAULT_CONFIG).toMatchObject({
      modelId: DEFAULTS.modelId,
      flushPaddingBytes: DEFAULTS.flushPaddingBytes,
      streamTimeoutSeconds: DEFAULTS.streamTimeoutSeconds,
      streamMemoryMb: DEFAULTS.streamMemoryMb,
      logRetentionDays: 30,
      natGateway: false,
      deletionProtection: true,
      removalPolicy: 'retain',
      streamReservedConcurrency: 100,
      messageTtlDays: 365,
      allowedOrigins: [],
      availabilityZones: [],
      titles: true,
      limitTurnsPerMinute: 10,
      limitConcurrentStreams: 3,
      limitTokensPerDay: 200_000,
      cache: 'valkey',
      compute: 'lambda',
      perEnvironmentMaxConcurrency: 16,
      managedInstancesMaxVCpus: 48,
      web: false,
      webAssetPath: 'web/dist',
    });
    // Unset: titles use chat:modelId.
    expect(DEFAULT_CONFIG.titleModelId).toBeUndefined();
  });

  it('reads cdk.json as it is, and -c strings the way the CLI passes them', () => {
    const cdkJson = JSON.parse(readFileSync(join(import.meta.dirname, '../../cdk.json'), 'utf8')) as {
      context: Record<string, unknown>;
    };
    const app = new App({ context: cdkJson.context });
    expect(readConfig(app.node)).toEqual(DEFAULT_CONFIG);
    const fromCli = parseConfig({
      natGateway: 'true',
      streamMemoryMb: '2048',
      logRetentionDays: '90',
      allowedOrigins: 'https://a.example.com, https://b.example.com',
      availabilityZones: '["use1-az1","use1-az2"]',
      streamReservedConcurrency: 'none',
      knowledgeBaseId: '',
    });
    expect(fromCli.knowledgeBaseId).toBeUndefined();
    expect(fromCli).toMatchObject({
      natGateway: true,
      streamMemoryMb: 2048,
      logRetentionDays: 90,
      allowedOrigins: ['https://a.example.com', 'https://b.example.com'],
      availabilityZones: ['use1-az1', 'use1-az2'],
      streamReservedConcurrency: undefined,
    });
    expect(parseConfig({ streamReservedConcurrency: '0' }).streamReservedConcurrency).toBeUndefined();
  });

  it('accepts booleans as true or false only (chat:natGateway=yes is an error, not false)', () => {
    for (const key of ['natGateway', 'deletionProtection', 'production', 'titles', 'web'])
      for (const value of ['yes', 'no', '1', 'TRUE', 0])
        expect(rejects({ [key]: value })).toContain(
          `chat:${key}: must be true or false (got ${JSON.stringify(value)})`,
        );
  });

  it("takes log retention from CloudWatch's list only (45 is rejected, listing the allowed values)", () => {
    const message = rejects({ logRetentionDays: 45 });
    expect(message).toContain(
      'chat:logRetentionDays: must be a retention CloudWatch Logs accepts: 1, 3, 5, 7, 14, 30, 60, 90',
    );
    expect(message).toContain('3653 (got 45)');
    expect(rejects({ logRetentionDays: '0' })).toContain('(got 0)');
    expect(LOG_RETENTION_DAYS).toHaveLength(22);
  });

  it('takes a relevance floor from 0 to 1 and an https source base URL', () => {
    expect(DEFAULT_CONFIG.ragRelevanceFloor).toBe(DEFAULTS.ragRelevanceFloor);
    expect(parseConfig({ ragRelevanceFloor: '0.55' }).ragRelevanceFloor).toBe(0.55);
    expect(rejects({ ragRelevanceFloor: '1.5' })).toMatch(/ragRelevanceFloor/);
    expect(parseConfig({ sourceBaseUrl: 'https://docs.example.com/kb/' }).sourceBaseUrl).toBe(
      'https://docs.example.com/kb/',
    );
    expect(rejects({ sourceBaseUrl: 'http://docs.example.com/' })).toMatch(/sourceBaseUrl/);
  });

  it('bounds every number', () => {
    const cases: Array<[string, unknown, string]> = [
      ['streamMemoryMb', 64, 'must be at least 128 MB (got 64)'],
      ['streamMemoryMb', 20_000, 'must be at most 10240 MB'],
      ['streamMemoryMb', 'lots', 'must be a number (got "lots")'],
      ['streamTimeoutSeconds', 901, 'must be at most 900 s'],
      ['streamTimeoutSeconds', 5, 'must be at least 10 s'],
      ['streamTimeoutSeconds', 12.5, 'must be a whole number'],
      ['messageTtlDays', -1, 'must be at least 0 days'],
      ['flushPaddingBytes', 2_000_000, 'must be at most 1048576 bytes'],
      ['cacheDataStorageGb', 0, 'must be at least 1 GB'],
      ['cacheDataStorageGb', 6000, 'must be at most 5000 GB'],
      ['cacheEcpuPerSecond', 500, 'must be at least 1000 ECPU/s'],
      ['cacheEcpuPerSecond', 20_000_000, 'must be at most 15000000 ECPU/s'],
      ['jwksRefreshMinutes', 1441, 'must be at most 1440 minutes'],
      ['streamReservedConcurrency', -1, 'must be at least 0 (got -1)'],
      ['streamReservedConcurrency', 'some', 'must be a whole number from 0 to 100000, or none (got "some")'],
      ['limitTurnsPerMinute', -1, 'must be at least 0 (got -1)'],
      ['limitTurnsPerMinute', 10_001, 'must be at most 10000'],
      ['limitConcurrentStreams', 1001, 'must be at most 1000'],
      ['limitTokensPerDay', 1.5, 'must be a whole number'],
      ['perEnvironmentMaxConcurrency', 0, 'must be at least 1 (got 0)'],
      ['perEnvironmentMaxConcurrency', 1601, 'must be at most 1600'],
      ['managedInstancesMaxVCpus', 8, 'must be at least 12 vCPUs (got 8)'],
    ];
    for (const [key, value, text] of cases)
      expect(rejects({ [key]: value }), `${key}=${value}`).toContain(`chat:${key}: ${text}`);
  });

  it('lists the allowed values of every enum', () => {
    expect(rejects({ removalPolicy: 'keep' })).toContain(
      'chat:removalPolicy: must be one of retain, destroy (got "keep")',
    );
    expect(rejects({ guardrailStreamMode: 'stream' })).toContain(
      'chat:guardrailStreamMode: must be one of sync, async (got "stream")',
    );
    expect(rejects({ cache: 'on' })).toContain('chat:cache: must be one of valkey, off (got "on")');
    expect(rejects({ compute: 'ec2' })).toContain(
      'chat:compute: must be one of lambda, managed-instances (got "ec2")',
    );
  });

  it('refuses malformed ids, origins, e-mails, Regions and zones', () => {
    expect(rejects({ modelId: 'claude-haiku' })).toContain('chat:modelId: "claude-haiku" is not a model id');
    expect(rejects({ knowledgeBaseId: 'kb-1' })).toContain(
      'chat:knowledgeBaseId: must be a knowledge base id',
    );
    expect(rejects({ allowedOrigins: 'https://app.example.com/chat' })).toContain(
      'chat:allowedOrigins.0: must be an origin like https://app.example.com, no path',
    );
    expect(rejects({ allowedOrigins: '*' })).toContain('chat:allowedOrigins.0');
    expect(rejects({ alarmEmail: 'oncall' })).toContain(
      'chat:alarmEmail: must be an e-mail address (got "oncall")',
    );
    expect(rejects({ region: 'Virginia' })).toContain('chat:region: must be a Region name like us-east-1');
    expect(rejects({ availabilityZones: 'use1-az1,us-east-1b' })).toContain('all of one kind');
    expect(rejects({ availabilityZones: 'use1-az1' })).toContain('must list 2 or 3 distinct zones');
    expect(rejects({ availabilityZones: 'use1-az1,use1-az1' })).toContain('must list 2 or 3 distinct zones');
    expect(rejects({ availabilityZones: 'us-east-1a,us-east-1b' })).toContain('AZ names need chat:region');
    expect(rejects({ availabilityZones: 'eu-west-1a,eu-west-1b', region: 'us-east-1' })).toContain(
      'chat:availabilityZones: must be zones of chat:region us-east-1',
    );
    expect(
      parseConfig({ availabilityZones: 'us-east-1a,us-east-1b', region: 'us-east-1' }).availabilityZones,
    ).toEqual(['us-east-1a', 'us-east-1b']);
    expect(rejects({ guardrailVersion: 'latest' })).toContain(
      'chat:guardrailVersion: must be DRAFT or a version number',
    );
    expect(rejects({ guardrailId: 'Not An Id' })).toContain(
      'chat:guardrailId: must be a guardrail id or guardrail ARN',
    );
    expect(rejects({ guardrailProfileId: 'us.guardrail' })).toContain('chat:guardrailProfileId');
    expect(rejects({ modelProductIds: 'abc' })).toContain(
      'chat:modelProductIds.0: must be a Marketplace product id',
    );
    for (const stage of ['Dev', 'dev_1', '1dev', 'a-stage-name-of-21-ch'])
      expect(rejects({ stage })).toContain('chat:stage: must be a stage name');
    expect(parseConfig({ stage: 'dev-2' }).stage).toBe('dev-2');
  });

  it('takes the deploy options as -c strings, 0 as "limit off", and a title model of any chat model form', () => {
    expect(
      parseConfig({
        cache: 'off',
        web: 'true',
        titles: 'false',
        titleModelId: 'global.anthropic.claude-haiku-4-5-20251001-v1:0',
        limitTurnsPerMinute: '0',
        limitConcurrentStreams: '0',
        limitTokensPerDay: '0',
      }),
    ).toMatchObject({
      cache: 'off',
      web: true,
      titles: false,
      titleModelId: 'global.anthropic.claude-haiku-4-5-20251001-v1:0',
      limitTurnsPerMinute: 0,
      limitConcurrentStreams: 0,
      limitTokensPerDay: 0,
    });
    expect(rejects({ titleModelId: 'haiku' })).toContain('chat:titleModelId: "haiku" is not a model id');
  });

  it('refuses Managed Instances below 2048 MB (their minimum) or without a VPC, saying what to add', () => {
    expect(rejects({ compute: 'managed-instances' })).toContain(
      'chat:streamMemoryMb: must be at least 2048 MB with chat:compute=managed-instances, the smallest function Lambda Managed Instances run (got 1024); add -c chat:streamMemoryMb=2048',
    );
    expect(rejects({ compute: 'managed-instances', streamMemoryMb: '2048', cache: 'off' })).toContain(
      'chat:compute: managed-instances needs a VPC',
    );
    expect(parseConfig({ compute: 'managed-instances', streamMemoryMb: '2048' })).toMatchObject({
      compute: 'managed-instances',
      perEnvironmentMaxConcurrency: 16,
    });
  });

  it('refuses an unknown chat: key (a typo would otherwise be ignored), naming the known ones', () => {
    const message = rejects({ natgateway: true });
    expect(message).toContain('chat:natgateway: not a setting; known keys: chat:modelId');
    for (const key of CONTEXT_KEYS) expect(message).toContain(`chat:${key}`);
  });

  it('reports every problem at once', () => {
    const message = rejects({ natGateway: 'yes', logRetentionDays: 45, removalPolicy: 'keep' });
    expect(message.split('\n').filter((line) => line.startsWith('  chat:'))).toHaveLength(3);
  });

  it('is what bin/app.ts reads: an app with a bad -c value fails before any construct exists', () => {
    const app = new App({ context: { 'chat:natGateway': 'yes' } });
    expect(() => readConfig(app.node)).toThrow(/chat:natGateway: must be true or false \(got "yes"\)/);
  });
});

describe('CDK feature flags (review N17)', () => {
  it("pins exactly the recommended set of the installed aws-cdk-lib, each at CDK's recommended value", () => {
    // An upgrade that recommends a new flag fails here, so `cdk flags` is run and the flag decided on
    // purpose instead of taking CDK's legacy default (e.g. a default security group that keeps its rules).
    const recommended = JSON.parse(
      readFileSync(
        createRequire(import.meta.url).resolve('aws-cdk-lib/recommended-feature-flags.json'),
        'utf8',
      ),
    ) as Record<string, unknown>;
    const { context } = JSON.parse(readFileSync(join(import.meta.dirname, '../../cdk.json'), 'utf8')) as {
      context: Record<string, unknown>;
    };
    const pinned = Object.fromEntries(Object.entries(context).filter(([key]) => !key.startsWith('chat:')));
    expect(Object.keys(recommended).length).toBeGreaterThan(50);
    expect(pinned).toEqual(recommended);
  });
});
