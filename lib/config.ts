import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Node } from 'constructs';
import { z } from 'zod';
import { DEFAULTS } from '../functions/contracts/defaults.ts';
import { METRICS_NAMESPACE } from '../functions/contracts/observability.ts';
import { parseModelId } from './models.ts';
import { AZ_ID } from './network.ts';

/** The retention values CloudWatch Logs accepts (anything else passes synth and fails at deploy). */
export const LOG_RETENTION_DAYS = Object.values(RetentionDays)
  .filter((v): v is number => typeof v === 'number' && v !== RetentionDays.INFINITE)
  .sort((a, b) => a - b);

const show = (value: unknown) => JSON.stringify(value);

// Context values come as JSON from cdk.json and as strings from `-c key=value`.
const toNumber = (v: unknown) => (typeof v === 'string' && /^-?\d+(\.\d+)?$/.test(v.trim()) ? Number(v) : v);
const toList = (v: unknown) => {
  if (typeof v !== 'string') return v;
  const text = v.trim();
  if (text.startsWith('[')) {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return v;
    }
  }
  return text === '' ? [] : text.split(',').map((s) => s.trim());
};

const flag = z.preprocess(
  (v) => (v === 'true' ? true : v === 'false' ? false : v),
  z.boolean({ error: (issue) => `must be true or false (got ${show(issue.input)})` }),
);

const integer = (min: number, max: number, unit = '') =>
  z.preprocess(
    toNumber,
    z
      .number({ error: (issue) => `must be a number (got ${show(issue.input)})` })
      .int({ error: (issue) => `must be a whole number (got ${show(issue.input)})` })
      .min(min, { error: (issue) => `must be at least ${min}${unit} (got ${show(issue.input)})` })
      .max(max, { error: (issue) => `must be at most ${max}${unit} (got ${show(issue.input)})` }),
  );

const choice = <const T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, { error: (issue) => `must be one of ${values.join(', ')} (got ${show(issue.input)})` });

const pattern = (regex: RegExp, what: string) =>
  z
    .string({ error: (issue) => `must be ${what} (got ${show(issue.input)})` })
    .regex(regex, { error: (issue) => `must be ${what} (got ${show(issue.input)})` });

const list = <T extends z.ZodType>(item: T) =>
  z.preprocess(
    toList,
    z.array(item, {
      error: (issue) => `must be a list or a comma-separated string (got ${show(issue.input)})`,
    }),
  );

const origin = z.string().refine(
  (value) => {
    try {
      const url = new URL(value);
      return (url.protocol === 'https:' || url.protocol === 'http:') && url.origin === value;
    } catch {
      return false;
    }
  },
  { error: (issue) => `must be an origin like https://app.example.com, no path (got ${show(issue.input)})` },
);

const AZ_NAME = /^[a-z]{2}(-[a-z]+)+-\d[a-z]$/;

/** The smallest memory size a function on Lambda Managed Instances may have. */
const MANAGED_INSTANCES_MIN_MEMORY_MB = 2048;

const schema = z
  .object({
    modelId: z
      .string()
      .default(DEFAULTS.modelId)
      .superRefine((id, ctx) => {
        const parsed = parseModelId(id);
        if ('error' in parsed) ctx.addIssue({ code: 'custom', message: parsed.error });
      }),
    /**
     * Other models a request may choose (`model` on every route); chat:modelId stays the default. Each is
     * parsed, Region-checked, granted and probed as chat:modelId is.
     */
    allowedModelIds: list(
      z
        .string({ error: (issue) => `must list model ids (got ${show(issue.input)})` })
        .superRefine((id, ctx) => {
          const parsed = parseModelId(id);
          if ('error' in parsed) ctx.addIssue({ code: 'custom', message: parsed.error });
        }),
    ).default([]),
    /** AWS Marketplace product ids that scope the first-use subscription (`aws-marketplace:ProductId`). */
    modelProductIds: list(pattern(/^prod-[a-z0-9]+$/, 'a Marketplace product id like prod-abc123')).default(
      [],
    ),
    knowledgeBaseId: pattern(
      /^[0-9A-Z]{10}$/,
      'a knowledge base id (10 upper-case letters or digits)',
    ).optional(),
    /** Passages scored under this (0 to 1) are neither sent to the model nor shown as sources; 0 keeps all. */
    ragRelevanceFloor: z
      .preprocess(
        toNumber,
        z
          .number({ error: (issue) => `must be a number from 0 to 1 (got ${show(issue.input)})` })
          .min(0)
          .max(1),
      )
      .default(DEFAULTS.ragRelevanceFloor),
    /** Where people open a source: an `s3://bucket/key` source links to this URL + key (https). */
    sourceBaseUrl: z
      .url({ protocol: /^https$/, error: (issue) => `must be an https URL (got ${show(issue.input)})` })
      .optional(),
    allowedOrigins: list(origin).default([]),
    streamMemoryMb: integer(128, 10_240, ' MB').default(DEFAULTS.streamMemoryMb),
    streamTimeoutSeconds: integer(10, 900, ' s').default(DEFAULTS.streamTimeoutSeconds),
    /** 0 or "none" leaves the function on the account's unreserved pool. */
    streamReservedConcurrency: z
      .union([z.literal('none'), integer(0, 100_000)], {
        error: (issue) => `must be a whole number from 0 to 100000, or none (got ${show(issue.input)})`,
      })
      .default(100)
      .transform((v) => (v === 'none' || v === 0 ? undefined : v)),
    logRetentionDays: z
      .preprocess(
        toNumber,
        z.number().refine((days) => LOG_RETENTION_DAYS.includes(days), {
          error: (issue) =>
            `must be a retention CloudWatch Logs accepts: ${LOG_RETENTION_DAYS.join(', ')} (got ${show(issue.input)})`,
        }),
      )
      .default(30),
    messageTtlDays: integer(0, 36_500, ' days').default(365),
    natGateway: flag.default(false),
    deletionProtection: flag.default(true),
    removalPolicy: choice(['retain', 'destroy']).default('retain'),
    alarmEmail: z
      .email({ error: (issue) => `must be an e-mail address (got ${show(issue.input)})` })
      .optional(),
    production: flag.default(false),
    /** A second stage in the same account and Region (e.g. dev): its own stack name and metrics namespace. */
    stage: pattern(
      /^[a-z][a-z0-9-]{0,19}$/,
      'a stage name of up to 20 lowercase letters, digits and hyphens, starting with a letter',
    ).optional(),
    flushPaddingBytes: integer(0, 1_048_576, ' bytes').default(DEFAULTS.flushPaddingBytes),
    region: pattern(/^[a-z]{2}(-[a-z]+)+-\d$/, 'a Region name like us-east-1').optional(),
    availabilityZones: list(z.string())
      .default([])
      .superRefine((zones, ctx) => {
        if (zones.length === 0) return;
        const ids = zones.every((zone) => AZ_ID.test(zone));
        const names = zones.every((zone) => AZ_NAME.test(zone));
        if (!ids && !names)
          ctx.addIssue({
            code: 'custom',
            message: `must be AZ ids like use1-az1,use1-az2 or AZ names like us-east-1a,us-east-1b, all of one kind (got ${show(zones)})`,
          });
        else if (zones.length < 2 || zones.length > 3 || new Set(zones).size !== zones.length)
          ctx.addIssue({ code: 'custom', message: `must list 2 or 3 distinct zones (got ${show(zones)})` });
      }),
    guardrailId: z
      .string()
      .regex(/^([a-z0-9]+|arn:aws[a-z-]*:bedrock:[a-z0-9-]+:\d{12}:guardrail\/[a-z0-9]+)$/, {
        error: (issue) => `must be a guardrail id or guardrail ARN (got ${show(issue.input)})`,
      })
      .optional(),
    guardrailVersion: pattern(/^(DRAFT|[1-9]\d{0,7})$/, 'DRAFT or a version number').default(
      DEFAULTS.guardrailVersion,
    ),
    guardrailStreamMode: choice(['sync', 'async']).default(DEFAULTS.guardrailStreamMode),
    /** A cross-Region guardrail profile, e.g. us.guardrail.v1:0, when the guardrail uses one. */
    guardrailProfileId: pattern(
      /^[a-z]{2,}(-[a-z]+)?\.guardrail\.v\d+:\d+$/,
      'a guardrail profile id like us.guardrail.v1:0',
    ).optional(),
    cacheDataStorageGb: integer(1, 5000, ' GB').default(1),
    cacheEcpuPerSecond: integer(1000, 15_000_000, ' ECPU/s').default(5000),
    // A rotation costs at most this long of 401s; a refresh is one small invocation (about 2,900 a month).
    jwksRefreshMinutes: integer(0, 1440, ' minutes').default(15),
    /** Conversation titles: one small Converse call per new session, in the consumer. */
    titles: flag.default(true),
    /** The model that writes titles; unset = chat:modelId. */
    titleModelId: z
      .string()
      .optional()
      .superRefine((id, ctx) => {
        if (id === undefined) return;
        const parsed = parseModelId(id);
        if ('error' in parsed) ctx.addIssue({ code: 'custom', message: parsed.error });
      }),
    /** Per-user limits, checked after auth and before any model call; 0 turns a limit off. */
    limitTurnsPerMinute: integer(0, 10_000).default(DEFAULTS.limitTurnsPerMinute),
    limitConcurrentStreams: integer(0, 1000).default(DEFAULTS.limitConcurrentStreams),
    limitTokensPerDay: integer(0, 1_000_000_000).default(DEFAULTS.limitTokensPerDay),
    /** `off`: no VPC, no endpoints, no Valkey; the functions read DynamoDB directly (dev and test stages). */
    cache: choice(['valkey', 'off']).default('valkey'),
    /** `managed-instances`: the stream function on Lambda Managed Instances (many streams per environment). */
    compute: choice(['lambda', 'managed-instances']).default('lambda'),
    /** Managed Instances: concurrent invocations one execution environment serves. */
    // Measured (npm run bench, one environment on this 2-core machine): at 16 streams the gap we add stays
    // near the bare model call's (6.4 vs 5.4 ms p99); at 64 it is 36 ms.
    perEnvironmentMaxConcurrency: integer(1, 1600).default(16),
    /** Managed Instances: the capacity provider's vCPU ceiling, the cost cap that replaces reserved concurrency. */
    managedInstancesMaxVCpus: integer(12, 15_000, ' vCPUs').default(48),
    /**
     * What clients reach: the Function URL, or an API Gateway REST API in response-streaming mode with
     * AWS WAF and throttling (the Function URL is then not created).
     */
    frontDoor: choice(['function-url', 'apigateway']).default('function-url'),
    /** chat:frontDoor=apigateway: the stage's steady requests per second and burst, for all clients together. */
    apiRateLimit: integer(1, 10_000, ' requests/s').default(50),
    apiBurstLimit: integer(1, 5000, ' requests').default(100),
    /** chat:frontDoor=apigateway: requests one IP may make in 5 minutes before AWS WAF blocks it. */
    wafRequestsPerIpPer5Minutes: integer(10, 2_000_000_000, ' requests').default(1000),
    /** Host the chat page (web/dist) on S3 + CloudFront. */
    web: flag.default(false),
    /** The built page to host with chat:web=true, relative to the project root or absolute. */
    webAssetPath: z.string().default('web/dist'),
    /** Changes on every deploy unless pinned: re-runs the model probe and the page-origin updates (the JWKS fetch runs on every deploy regardless). */
    deployNonce: z.string().optional(),
  })
  .strict()
  .superRefine((config, ctx) => {
    // Lambda Managed Instances run functions of 2 GB and more, in the capacity provider's VPC.
    if (config.compute === 'managed-instances') {
      if (config.streamMemoryMb < MANAGED_INSTANCES_MIN_MEMORY_MB)
        ctx.addIssue({
          code: 'custom',
          path: ['streamMemoryMb'],
          message: `must be at least ${MANAGED_INSTANCES_MIN_MEMORY_MB} MB with chat:compute=managed-instances, the smallest function Lambda Managed Instances run (got ${config.streamMemoryMb}); add -c chat:streamMemoryMb=${MANAGED_INSTANCES_MIN_MEMORY_MB}`,
        });
      if (config.cache === 'off')
        ctx.addIssue({
          code: 'custom',
          path: ['compute'],
          message:
            'managed-instances needs a VPC (the capacity provider launches its instances in its subnets), and chat:cache=off builds none: use one option or the other',
        });
    }
  })
  .superRefine((config, ctx) => {
    // An AZ name means a different zone in each account, and only within its own Region.
    const names = config.availabilityZones.filter((zone) => !AZ_ID.test(zone));
    if (names.length === 0) return;
    const region = config.region;
    if (!region)
      ctx.addIssue({
        code: 'custom',
        path: ['availabilityZones'],
        message: `AZ names need chat:region; or give AZ ids like use1-az1 (got ${show(names)})`,
      });
    else if (names.some((zone) => zone.slice(0, -1) !== region))
      ctx.addIssue({
        code: 'custom',
        path: ['availabilityZones'],
        message: `must be zones of chat:region ${region} (got ${show(names)})`,
      });
  });

/** Deployment settings from `cdk.json` context (`-c chat:<key>=…` overrides), validated. */
export type ChatStackConfig = z.output<typeof schema>;

export const CONTEXT_KEYS = Object.keys(schema.shape);

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parses `{ key: value }` (context keys without the `chat:` prefix); empty values fall back to defaults. */
export function parseConfig(raw: Record<string, unknown>): ChatStackConfig {
  const input = Object.fromEntries(
    Object.entries(raw).filter(([, v]) => v !== undefined && v !== null && v !== ''),
  );
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    if (issue.code === 'unrecognized_keys')
      return issue.keys
        .map(
          (key) =>
            `  chat:${key}: not a setting; known keys: ${CONTEXT_KEYS.map((k) => `chat:${k}`).join(', ')}`,
        )
        .join('\n');
    return `  chat:${issue.path.join('.')}: ${issue.message}`;
  });
  throw new ConfigError(`Invalid context (cdk.json or -c chat:<key>=<value>):\n${lines.join('\n')}`);
}

export const DEFAULT_CONFIG: ChatStackConfig = parseConfig({});

/**
 * The stack's name and its metrics namespace: both carry the stage, so two stages in one account and
 * Region neither replace each other's stack nor mix their metrics (and alarms) in one namespace.
 */
export function stageNames(stage: string | undefined): { stackName: string; metricsNamespace: string } {
  return stage
    ? { stackName: `StreamingChat-${stage}`, metricsNamespace: `${METRICS_NAMESPACE}/${stage}` }
    : { stackName: 'StreamingChat', metricsNamespace: METRICS_NAMESPACE };
}

/** Reads every `chat:` context key of the app. */
export function readConfig(node: Node): ChatStackConfig {
  const context = node.getAllContext() as Record<string, unknown>;
  return parseConfig(
    Object.fromEntries(
      Object.entries(context)
        .filter(([key]) => key.startsWith('chat:'))
        .map(([key, value]) => [key.slice('chat:'.length), value]),
    ),
  );
}
