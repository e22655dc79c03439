import type { ConverseCommandInput, ConverseCommandOutput } from '@aws-sdk/client-bedrock-runtime';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import {
  type Converse,
  createModelProbeHandler,
  type GetAvailability,
  type ProbeOptions,
} from '../../../lib/custom-resources/model-probe.ts';

const MODEL = 'us.anthropic.claude-haiku-4-5-20251001-v1:0';
const FOUNDATION_MODEL = 'anthropic.claude-haiku-4-5-20251001-v1:0';

const event = (
  requestType: 'Create' | 'Update' | 'Delete',
  nonce = '2026-11-27T12:00:00.000Z',
  oldNonce = '2026-11-26T12:00:00.000Z',
  extra: Record<string, string> = {},
  oldExtra: Record<string, string> = extra,
) =>
  ({
    RequestType: requestType,
    RequestId: 'req-1',
    StackId: 'stack',
    LogicalResourceId: 'ModelInvoke',
    ResourceType: 'Custom::ModelProbe',
    ServiceToken: 'arn',
    ResponseURL: 'https://cloudformation.invalid/unused',
    PhysicalResourceId: 'model-probe',
    ResourceProperties: {
      ServiceToken: 'arn',
      ModelId: MODEL,
      FoundationModelId: FOUNDATION_MODEL,
      DeployNonce: nonce,
      ...extra,
    },
    OldResourceProperties: {
      ServiceToken: 'arn',
      ModelId: MODEL,
      FoundationModelId: FOUNDATION_MODEL,
      DeployNonce: oldNonce,
      ...oldExtra,
    },
  }) as unknown as CloudFormationCustomResourceEvent;

/** Bedrock's availability answers in turn (the last one repeats), recording what was asked. */
function agreement(...statuses: Array<[string | undefined, string?]>) {
  const asked: string[] = [];
  const availability: GetAvailability = async (id) => {
    asked.push(id);
    const [status, errorMessage] = statuses[Math.min(asked.length - 1, statuses.length - 1)] ?? [];
    return { agreementStatus: status, errorMessage };
  };
  return { asked, availability };
}

const available = () => agreement(['AVAILABLE']).availability;
const probe = (options: Omit<ProbeOptions, 'availability'> & Partial<ProbeOptions>) =>
  createModelProbeHandler({ availability: available(), ...options });

// An injected Converse: records each call, answers or throws what the test says.
function client(outcome: Partial<ConverseCommandOutput> | Error) {
  const calls: Array<{ input: ConverseCommandInput; signal: AbortSignal }> = [];
  const converse: Converse = async (input, signal) => {
    calls.push({ input, signal });
    if (outcome instanceof Error) throw outcome;
    return outcome as ConverseCommandOutput;
  };
  return { calls, converse };
}

class AwsError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

describe('model probe custom resource', () => {
  it('calls Converse once with the configured model and a one-token prompt, on create and on each deploy', async () => {
    const { calls, converse } = client({ stopReason: 'max_tokens' });
    const handler = probe({ converse });
    expect(await handler(event('Create'))).toEqual({
      PhysicalResourceId: 'model-probe',
      Data: { StopReason: 'max_tokens', Agreement: 'AVAILABLE' },
    });
    await handler(event('Update'));
    expect(calls).toHaveLength(2);
    expect(calls[0]?.input).toMatchObject({ modelId: MODEL, inferenceConfig: { maxTokens: 1 } });
    expect(calls[0]?.input.messages).toHaveLength(1);
    expect(calls[0]?.signal).toBeInstanceOf(AbortSignal);
  });

  it("fails the deploy with AWS's error name and message when the model cannot be invoked (after waiting out IAM)", async () => {
    const denied = new AwsError(
      'AccessDeniedException',
      'Model access is denied due to IAM user or service role is not authorized to perform the required AWS Marketplace actions',
    );
    const { calls, converse } = client(denied);
    await expect(probe({ converse, accessDeniedRetriesMs: [1, 1] })(event('Create'))).rejects.toThrow(
      `Bedrock Converse on ${MODEL} failed: AccessDeniedException: Model access is denied due to IAM user or service role is not authorized to perform the required AWS Marketplace actions`,
    );
    // Two waits for IAM to catch up, then the denial is final.
    expect(calls).toHaveLength(3);
  });

  it('asks again after an AccessDeniedException while IAM catches up with the new role, then succeeds', async () => {
    let calls = 0;
    const converse: Converse = async () => {
      calls++;
      if (calls === 1)
        throw new AwsError('AccessDeniedException', 'not authorized to perform: bedrock:InvokeModel');
      return { stopReason: 'max_tokens' } as ConverseCommandOutput;
    };
    const answer = await probe({ converse, accessDeniedRetriesMs: [1] })(event('Create'));
    expect(answer.Data).toEqual({ StopReason: 'max_tokens', Agreement: 'AVAILABLE' });
    expect(calls).toBe(2);
  });

  it('does not retry other errors (a missing first-use form is final)', async () => {
    const { calls, converse } = client(
      new AwsError(
        'ResourceNotFoundException',
        'Model use case details have not been submitted for this account.',
      ),
    );
    await expect(probe({ converse, accessDeniedRetriesMs: [1, 1] })(event('Create'))).rejects.toThrow(
      /ResourceNotFoundException: Model use case details have not been submitted/,
    );
    expect(calls).toHaveLength(1);
  });

  it('gives up after its own timeout rather than the hour CloudFormation would wait', async () => {
    const converse: Converse = (_input, signal) =>
      new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
    await expect(probe({ converse, timeoutMs: 50 })(event('Create'))).rejects.toThrow(/failed: TimeoutError/);
  });

  it('goes through the guardrail the turns use, and names it when Converse refuses it', async () => {
    const extra = { GuardrailId: 'gr1abc2def3', GuardrailVersion: '3' };
    const { calls, converse } = client({ stopReason: 'max_tokens' });
    await probe({ converse })(event('Create', undefined, undefined, extra));
    expect(calls[0]?.input.guardrailConfig).toEqual({
      guardrailIdentifier: 'gr1abc2def3',
      guardrailVersion: '3',
    });
    const wrong = client(
      new AwsError('ValidationException', 'The guardrail identifier or version is invalid.'),
    );
    await expect(
      probe({ converse: wrong.converse })(event('Create', undefined, undefined, extra)),
    ).rejects.toThrow(
      `Bedrock Converse on ${MODEL} through guardrail gr1abc2def3:3 failed: ValidationException: The guardrail identifier or version is invalid.`,
    );
  });

  it('waits while the Marketplace agreement is PENDING (a first call can pass during it), then succeeds on AVAILABLE', async () => {
    const { calls, converse } = client({ stopReason: 'max_tokens' });
    const { asked, availability } = agreement(['PENDING'], ['PENDING'], ['AVAILABLE']);
    const answer = await probe({ converse, availability, availabilityPollMs: 1 })(event('Create'));
    expect(answer.Data).toEqual({ StopReason: 'max_tokens', Agreement: 'AVAILABLE' });
    expect(asked).toEqual([FOUNDATION_MODEL, FOUNDATION_MODEL, FOUNDATION_MODEL]);
    expect(calls).toHaveLength(1);
  });

  it("fails with Bedrock's reason when the agreement is ERROR or NOT_AVAILABLE, and when PENDING outlasts its budget", async () => {
    const { converse } = client({ stopReason: 'max_tokens' });
    const failed = agreement(['ERROR', 'No valid payment method on the account']);
    await expect(probe({ converse, availability: failed.availability })(event('Create'))).rejects.toThrow(
      `Bedrock reports the agreement for ${FOUNDATION_MODEL} as ERROR: No valid payment method on the account.`,
    );
    const missing = agreement(['NOT_AVAILABLE']);
    await expect(probe({ converse, availability: missing.availability })(event('Create'))).rejects.toThrow(
      /as NOT_AVAILABLE\. Calls can succeed for a few minutes/,
    );
    const stuck = agreement(['PENDING']);
    await expect(
      probe({ converse, availability: stuck.availability, availabilityPollMs: 5, availabilityBudgetMs: 30 })(
        event('Create'),
      ),
    ).rejects.toThrow(
      /still PENDING after 0 minutes; deploy again once `aws bedrock get-foundation-model-availability/,
    );
    expect(stuck.asked.length).toBeGreaterThan(1);
  });

  it('asks nothing about an application profile, whose ARN names no model', async () => {
    const { converse } = client({ stopReason: 'max_tokens' });
    const { asked, availability } = agreement(['NOT_AVAILABLE']);
    const created = event('Create');
    delete (created.ResourceProperties as Record<string, unknown>).FoundationModelId;
    expect((await probe({ converse, availability })(created)).Data).toMatchObject({ Agreement: 'unknown' });
    expect(asked).toEqual([]);
  });

  it('lets the deploy go on, with a warning, when Bedrock is only busy (throttled or unavailable)', async () => {
    for (const name of ['ThrottlingException', 'ServiceUnavailableException']) {
      const { calls, converse } = client(
        new AwsError(name, 'Too many requests, please wait before trying again.'),
      );
      const { asked, availability } = agreement(['AVAILABLE']);
      const answer = await probe({ converse, availability })(event('Create'));
      expect(answer.Data, name).toEqual({ StopReason: 'not-probed', Warning: expect.stringContaining(name) });
      expect(calls, name).toHaveLength(1);
      expect(asked, name).toEqual([]);
    }
  });

  it('probes again when the model or guardrail changed, even under a pinned nonce that is not a date', async () => {
    const { calls, converse } = client({ stopReason: 'max_tokens' });
    const handler = probe({ converse });
    await handler(
      event(
        'Update',
        'v2',
        'v2',
        { GuardrailId: 'gr1', GuardrailVersion: '4' },
        { GuardrailId: 'gr1', GuardrailVersion: '3' },
      ),
    );
    expect(calls).toHaveLength(1);
    // The same model and guardrail under a pinned nonce: a config deploy or a rollback, nothing to probe.
    expect(await handler(event('Update', 'v2', 'v1'))).toEqual({ PhysicalResourceId: 'model-probe' });
    expect(calls).toHaveLength(1);
  });

  it('does not call the model on delete, nor on the update a rollback replays (older nonce)', async () => {
    const { calls, converse } = client({ stopReason: 'max_tokens' });
    const handler = probe({ converse });
    expect(await handler(event('Delete'))).toEqual({ PhysicalResourceId: 'model-probe' });
    expect(await handler(event('Update', '2026-11-26T12:00:00.000Z', '2026-11-27T12:00:00.000Z'))).toEqual({
      PhysicalResourceId: 'model-probe',
    });
    expect(calls).toEqual([]);
  });
});
