import { beforeAll, describe, expect, it } from 'vitest';
import * as z from 'zod/mini';
import { DEFAULTS } from '../../functions/contracts/defaults.ts';
import { SERVICE_NAMES } from '../../functions/contracts/observability.ts';
import { PersistEnv, StreamEnv } from '../../functions/environment.ts';
import { DEFAULT_CONFIG } from '../../lib/config.ts';
import { type Resource, resolveIntrinsics, resourcesOf, type Synthesized, synth } from './synth.ts';

/** Read by the Node.js runtime and Powertools themselves, not by the functions' schemas. */
const PLATFORM = ['NODE_ENV', 'NODE_OPTIONS', 'POWERTOOLS_SERVICE_NAME', 'POWERTOOLS_METRICS_NAMESPACE'];

/** Deployed-looking values for the tokens the stack writes (queue URL, issuer, table name, JWKS…). */
const KNOWN: Record<string, string> = {
  'AWS::Region': 'us-east-1',
  'AWS::AccountId': '123456789012',
  'AWS::URLSuffix': 'amazonaws.com',
};
const deployedValue = (value: unknown): string => {
  const text = resolveIntrinsics(value, KNOWN);
  // An attribute or reference nobody named stands in as a plausible deployed value of its kind.
  return text
    .replace(
      /<[A-Za-z0-9]*Queue[A-Za-z0-9]*\.QueueUrl>|<[A-Za-z0-9]*Queue[A-Za-z0-9]*>/g,
      () => 'https://sqs.us-east-1.amazonaws.com/123456789012/messages.fifo',
    )
    .replace(/<[A-Za-z0-9.]+>/g, 'deployed-value');
};

/**
 * The environment a function's role in the stack writes, parsed with the runtime's own schema made
 * strict: a name the runtime does not read (a rename on either side) fails, and so does a value it
 * refuses. Returns the problems, none when the two agree.
 */
function checkEnvironment(schema: typeof StreamEnv | typeof PersistEnv, written: Record<string, string>) {
  const env = Object.fromEntries(Object.entries(written).filter(([key]) => !PLATFORM.includes(key)));
  const strict = z.strictObject(schema.shape);
  const result = z.safeParse(strict, env);
  if (result.success) return [];
  return result.error.issues.map((issue) =>
    issue.code === 'unrecognized_keys'
      ? `not read by the runtime: ${issue.keys.join(', ')}`
      : `${issue.path.join('.')}: ${issue.message}`,
  );
}

let main: Synthesized;
let guarded: Synthesized;
let gateway: Synthesized;
const environmentOf = (result: Synthesized, service: string) => {
  const fn = resourcesOf(result.template, 'AWS::Lambda::Function')
    .map(([, f]) => f)
    .find((f: Resource) => {
      const vars = (f.Properties.Environment as { Variables?: Record<string, unknown> } | undefined)
        ?.Variables;
      return vars?.POWERTOOLS_SERVICE_NAME === service;
    });
  if (!fn) throw new Error(`no function of service ${service}`);
  const vars = (fn.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
  return Object.fromEntries(Object.entries(vars).map(([key, value]) => [key, deployedValue(value)]));
};

beforeAll(() => {
  main = synth({ knowledgeBaseId: 'KB12345678', alarmEmail: 'oncall@example.com' });
  guarded = synth({ guardrailId: 'gr1abc2def3', titleModelId: 'us.amazon.nova-micro-v1:0', cache: 'off' });
  gateway = synth({ frontDoor: 'apigateway', allowedOrigins: 'https://chat.example.com' });
}, 120_000);

describe("every function's environment, as the stack writes it, parsed with the runtime's own schema", () => {
  it('the stream function: every name is one it reads, every value one it accepts, in each variant', () => {
    for (const result of [main, guarded, gateway]) {
      const written = environmentOf(result, SERVICE_NAMES.stream);
      expect(Object.keys(written).length).toBeGreaterThan(20);
      expect(checkEnvironment(StreamEnv, written)).toEqual([]);
    }
  });

  it('behind API Gateway, and only there, the stream function is told which origins its CORS headers allow', () => {
    expect(environmentOf(gateway, SERVICE_NAMES.stream).CORS_ALLOWED_ORIGINS).toBe(
      'https://chat.example.com',
    );
    expect(environmentOf(main, SERVICE_NAMES.stream)).not.toHaveProperty('CORS_ALLOWED_ORIGINS');
  });

  it('the consumer: the same', () => {
    for (const result of [main, guarded]) {
      const written = environmentOf(result, SERVICE_NAMES.persist);
      expect(written.TABLE_NAME).toBeDefined();
      expect(checkEnvironment(PersistEnv, written)).toEqual([]);
    }
  });

  it('fails when a name drifts or a value does not fit (planted drift)', () => {
    const written = environmentOf(main, SERVICE_NAMES.stream);
    // The stack renamed a variable the runtime still reads under its old name.
    const { LIMIT_TURNS_PER_MINUTE, ...rest } = written;
    expect(
      checkEnvironment(StreamEnv, { ...rest, LIMIT_TURNS_PER_MIN: String(LIMIT_TURNS_PER_MINUTE) }),
    ).toEqual(['not read by the runtime: LIMIT_TURNS_PER_MIN']);
    // A required variable the stack stopped writing.
    const { QUEUE_URL: _queue, ...withoutQueue } = written;
    expect(checkEnvironment(StreamEnv, withoutQueue)).toEqual([expect.stringMatching(/^QUEUE_URL: /)]);
    // A value the runtime refuses.
    expect(checkEnvironment(StreamEnv, { ...written, GUARDRAIL_STREAM_MODE: 'fast' })).toEqual([
      expect.stringMatching(/^GUARDRAIL_STREAM_MODE: /),
    ]);
    const consumer = environmentOf(main, SERVICE_NAMES.persist);
    expect(checkEnvironment(PersistEnv, { ...consumer, TITLE_MODEL: 'x' })).toEqual([
      'not read by the runtime: TITLE_MODEL',
    ]);
  });
});

describe('one default for what both sides configure (functions/contracts/defaults.ts)', () => {
  it('the guardrail stream mode and version, and the per-user limits, default the same in the stack and at runtime', () => {
    const runtime = z.parse(StreamEnv, {
      TABLE_NAME: 't',
      QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/q.fifo',
      AUTH_ISSUER: 'https://cognito-idp.us-east-1.amazonaws.com/pool',
      AUTH_AUDIENCE: 'client',
    });
    const stack = {
      GUARDRAIL_STREAM_MODE: DEFAULT_CONFIG.guardrailStreamMode,
      GUARDRAIL_VERSION: DEFAULT_CONFIG.guardrailVersion,
      LIMIT_TURNS_PER_MINUTE: DEFAULT_CONFIG.limitTurnsPerMinute,
      LIMIT_CONCURRENT_STREAMS: DEFAULT_CONFIG.limitConcurrentStreams,
      LIMIT_TOKENS_PER_DAY: DEFAULT_CONFIG.limitTokensPerDay,
    };
    expect(stack).toEqual({
      GUARDRAIL_STREAM_MODE: runtime.GUARDRAIL_STREAM_MODE,
      GUARDRAIL_VERSION: runtime.GUARDRAIL_VERSION,
      LIMIT_TURNS_PER_MINUTE: runtime.LIMIT_TURNS_PER_MINUTE,
      LIMIT_CONCURRENT_STREAMS: runtime.LIMIT_CONCURRENT_STREAMS,
      LIMIT_TOKENS_PER_DAY: runtime.LIMIT_TOKENS_PER_DAY,
    });
    expect(stack.GUARDRAIL_STREAM_MODE).toBe(DEFAULTS.guardrailStreamMode);
    // And the deployed stack writes that default when only a guardrail id is given.
    expect(environmentOf(guarded, SERVICE_NAMES.stream).GUARDRAIL_STREAM_MODE).toBe(
      DEFAULTS.guardrailStreamMode,
    );
  });
});
