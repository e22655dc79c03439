import type { ConverseCommandInput, ConverseCommandOutput } from '@aws-sdk/client-bedrock-runtime';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { type Converse, createModelProbeHandler } from '../../../lib/custom-resources/model-probe.ts';

const MODEL = 'us.anthropic.claude-haiku-4-5-20251001-v1:0';

const event = (
  requestType: 'Create' | 'Update' | 'Delete',
  nonce = '2026-11-27T12:00:00.000Z',
  oldNonce = '2026-11-26T12:00:00.000Z',
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
    ResourceProperties: { ServiceToken: 'arn', ModelId: MODEL, DeployNonce: nonce },
    OldResourceProperties: { ServiceToken: 'arn', ModelId: MODEL, DeployNonce: oldNonce },
  }) as unknown as CloudFormationCustomResourceEvent;

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
    const handler = createModelProbeHandler({ converse });
    expect(await handler(event('Create'))).toEqual({
      PhysicalResourceId: 'model-probe',
      Data: { StopReason: 'max_tokens' },
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
    await expect(
      createModelProbeHandler({ converse, accessDeniedRetriesMs: [1, 1] })(event('Create')),
    ).rejects.toThrow(
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
    const answer = await createModelProbeHandler({ converse, accessDeniedRetriesMs: [1] })(event('Create'));
    expect(answer.Data).toEqual({ StopReason: 'max_tokens' });
    expect(calls).toBe(2);
  });

  it('does not retry other errors (a missing first-use form is final)', async () => {
    const { calls, converse } = client(
      new AwsError(
        'ResourceNotFoundException',
        'Model use case details have not been submitted for this account.',
      ),
    );
    await expect(
      createModelProbeHandler({ converse, accessDeniedRetriesMs: [1, 1] })(event('Create')),
    ).rejects.toThrow(/ResourceNotFoundException: Model use case details have not been submitted/);
    expect(calls).toHaveLength(1);
  });

  it('gives up after its own timeout rather than the hour CloudFormation would wait', async () => {
    const converse: Converse = (_input, signal) =>
      new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
    await expect(createModelProbeHandler({ converse, timeoutMs: 50 })(event('Create'))).rejects.toThrow(
      /failed: TimeoutError/,
    );
  });

  it('does not call the model on delete, nor on the update a rollback replays (older nonce)', async () => {
    const { calls, converse } = client({ stopReason: 'max_tokens' });
    const handler = createModelProbeHandler({ converse });
    expect(await handler(event('Delete'))).toEqual({ PhysicalResourceId: 'model-probe' });
    expect(await handler(event('Update', '2026-11-26T12:00:00.000Z', '2026-11-27T12:00:00.000Z'))).toEqual({
      PhysicalResourceId: 'model-probe',
    });
    expect(calls).toEqual([]);
  });
});
