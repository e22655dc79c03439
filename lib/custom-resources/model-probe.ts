import {
  BedrockRuntimeClient,
  ConverseCommand,
  type ConverseCommandInput,
  type ConverseCommandOutput,
} from '@aws-sdk/client-bedrock-runtime';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import type { ProviderResponse } from './jwks-fetch.ts';

/**
 * Deploy time (CDK custom-resources Provider, outside the VPC): calls Converse once with a one-token
 * prompt on the model the stream function will use, and fails the deploy with AWS's own error when the
 * model cannot be invoked (no Anthropic first-use form, no Marketplace subscription, wrong Region,
 * missing grant) instead of letting every turn end in `model_error` behind an HTTP 200.
 */

export type Converse = (input: ConverseCommandInput, signal: AbortSignal) => Promise<ConverseCommandOutput>;

export interface ProbeOptions {
  converse: Converse;
  timeoutMs?: number;
  /**
   * Waits before asking again after an AccessDeniedException: the probe's role and policy were created
   * seconds earlier, and IAM is eventually consistent. A denial that outlasts them is real.
   */
  accessDeniedRetriesMs?: number[];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A stack rollback replays the previous properties: its deploy nonce is older than the failed one's. */
function isRollback(event: CloudFormationCustomResourceEvent): boolean {
  if (event.RequestType !== 'Update') return false;
  const next = Date.parse(String(event.ResourceProperties.DeployNonce));
  const previous = Date.parse(String(event.OldResourceProperties.DeployNonce));
  return Number.isFinite(next) && Number.isFinite(previous) && next < previous;
}

export function createModelProbeHandler(options: ProbeOptions) {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const retries = options.accessDeniedRetriesMs ?? [10_000, 20_000];
  return async (event: CloudFormationCustomResourceEvent): Promise<ProviderResponse> => {
    const modelId = String(event.ResourceProperties.ModelId);
    // Probing again during a rollback could fail it too and leave the stack in UPDATE_ROLLBACK_FAILED.
    if (event.RequestType === 'Delete' || (event.RequestType === 'Update' && isRollback(event)))
      return { PhysicalResourceId: event.PhysicalResourceId };
    for (let attempt = 0; ; attempt++) {
      try {
        const answer = await options.converse(
          {
            modelId,
            messages: [{ role: 'user', content: [{ text: 'Reply with one word.' }] }],
            inferenceConfig: { maxTokens: 1 },
          },
          AbortSignal.timeout(timeoutMs),
        );
        return { PhysicalResourceId: 'model-probe', Data: { StopReason: String(answer.stopReason) } };
      } catch (error) {
        const { name, message } = error instanceof Error ? error : new Error(String(error));
        const wait = retries[attempt];
        if (name === 'AccessDeniedException' && wait !== undefined) {
          await sleep(wait);
          continue;
        }
        throw new Error(`Bedrock Converse on ${modelId} failed: ${name}: ${message}`);
      }
    }
  };
}

const client = new BedrockRuntimeClient({ maxAttempts: 3 });

export const handler = createModelProbeHandler({
  converse: (input, signal) => client.send(new ConverseCommand(input), { abortSignal: signal }),
});
