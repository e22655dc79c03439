import { BedrockClient, GetFoundationModelAvailabilityCommand } from '@aws-sdk/client-bedrock';
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
 * prompt on the model the stream function will use, through its guardrail when it has one, and fails
 * the deploy with AWS's own error when that cannot work (no Anthropic first-use form, no Marketplace
 * subscription, wrong Region, missing grant, wrong guardrail id or version). A first call can succeed
 * while the Marketplace subscription is still being processed and fail minutes later, so the probe then
 * waits until Bedrock reports the model's agreement AVAILABLE.
 */

export type Converse = (input: ConverseCommandInput, signal: AbortSignal) => Promise<ConverseCommandOutput>;

/** What GetFoundationModelAvailability says about the account's agreement for a foundation model. */
export interface ModelAvailability {
  agreementStatus: string | undefined;
  errorMessage?: string | undefined;
}

export type GetAvailability = (foundationModelId: string) => Promise<ModelAvailability>;

export interface ProbeOptions {
  converse: Converse;
  availability: GetAvailability;
  timeoutMs?: number;
  /**
   * Waits before asking again after an AccessDeniedException: the probe's role and policy were created
   * seconds earlier, and IAM is eventually consistent. A denial that outlasts them is real.
   */
  accessDeniedRetriesMs?: number[];
  /** How often, and how long at most, to ask for the agreement while it is PENDING. */
  availabilityPollMs?: number;
  availabilityBudgetMs?: number;
}

/** Bedrock is busy, not refusing: the deploy goes on (with a warning) rather than rolling back. */
const TRANSIENT = new Set(['ThrottlingException', 'ServiceUnavailableException', 'ModelNotReadyException']);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const PROBED = ['ModelId', 'FoundationModelId', 'GuardrailId', 'GuardrailVersion'] as const;

/**
 * A probe is owed on create, when what it checks changed, and on a deploy that moved the nonce forward
 * in time. A rollback replays older properties (an older nonce, or the same model), and probing then
 * could fail the rollback too and leave the stack in UPDATE_ROLLBACK_FAILED.
 */
function probeOwed(event: CloudFormationCustomResourceEvent): boolean {
  if (event.RequestType === 'Create') return true;
  if (event.RequestType === 'Delete') return false;
  const next = event.ResourceProperties;
  const previous = event.OldResourceProperties;
  const [nextNonce, previousNonce] = [next.DeployNonce, previous.DeployNonce].map((n) =>
    Date.parse(String(n)),
  );
  const datedNonces = Number.isFinite(nextNonce) && Number.isFinite(previousNonce);
  if (datedNonces && (nextNonce as number) < (previousNonce as number)) return false;
  const changed = PROBED.some((key) => String(next[key] ?? '') !== String(previous[key] ?? ''));
  return changed || (datedNonces && (nextNonce as number) > (previousNonce as number));
}

const errorParts = (error: unknown) => {
  const { name, message } = error instanceof Error ? error : new Error(String(error));
  return { name, message };
};

export function createModelProbeHandler(options: ProbeOptions) {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const retries = options.accessDeniedRetriesMs ?? [10_000, 20_000];
  const pollMs = options.availabilityPollMs ?? 15_000;
  const budgetMs = options.availabilityBudgetMs ?? 12 * 60_000;

  async function converse(
    modelId: string,
    guardrail: ConverseCommandInput['guardrailConfig'],
  ): Promise<{ stopReason: string } | { warning: string }> {
    for (let attempt = 0; ; attempt++) {
      try {
        const answer = await options.converse(
          {
            modelId,
            messages: [{ role: 'user', content: [{ text: 'Reply with one word.' }] }],
            inferenceConfig: { maxTokens: 1 },
            ...(guardrail ? { guardrailConfig: guardrail } : {}),
          },
          AbortSignal.timeout(timeoutMs),
        );
        return { stopReason: String(answer.stopReason) };
      } catch (error) {
        const { name, message } = errorParts(error);
        const wait = retries[attempt];
        if (name === 'AccessDeniedException' && wait !== undefined) {
          await sleep(wait);
          continue;
        }
        if (TRANSIENT.has(name)) return { warning: `Bedrock was busy (${name}); the model was not probed` };
        const through = guardrail
          ? ` through guardrail ${guardrail.guardrailIdentifier}:${guardrail.guardrailVersion}`
          : '';
        throw new Error(`Bedrock Converse on ${modelId}${through} failed: ${name}: ${message}`);
      }
    }
  }

  async function waitForAgreement(foundationModelId: string): Promise<string> {
    const deadline = Date.now() + budgetMs;
    for (;;) {
      const { agreementStatus, errorMessage } = await options.availability(foundationModelId);
      if (agreementStatus === 'AVAILABLE') return agreementStatus;
      if (agreementStatus !== 'PENDING')
        throw new Error(
          `Bedrock reports the agreement for ${foundationModelId} as ${agreementStatus}${errorMessage ? `: ${errorMessage}` : ''}. Calls can succeed for a few minutes and then fail; fix the Marketplace subscription (payment method, aws-marketplace:Subscribe/Unsubscribe/ViewSubscriptions, private marketplace or SCP) and deploy again.`,
        );
      if (Date.now() + pollMs > deadline)
        throw new Error(
          `The Marketplace subscription for ${foundationModelId} is still PENDING after ${Math.round(budgetMs / 60_000)} minutes; deploy again once \`aws bedrock get-foundation-model-availability --model-id ${foundationModelId}\` shows AVAILABLE.`,
        );
      await sleep(pollMs);
    }
  }

  return async (event: CloudFormationCustomResourceEvent): Promise<ProviderResponse> => {
    const physicalId = event.RequestType === 'Create' ? 'model-probe' : event.PhysicalResourceId;
    if (!probeOwed(event)) return { PhysicalResourceId: physicalId };
    const props = event.ResourceProperties;
    const modelId = String(props.ModelId);
    const guardrail = props.GuardrailId
      ? { guardrailIdentifier: String(props.GuardrailId), guardrailVersion: String(props.GuardrailVersion) }
      : undefined;
    const probe = await converse(modelId, guardrail);
    if ('warning' in probe) {
      console.warn(JSON.stringify({ message: 'model probe skipped', modelId, reason: probe.warning }));
      return { PhysicalResourceId: physicalId, Data: { StopReason: 'not-probed', Warning: probe.warning } };
    }
    // An application inference profile ARN does not name its model: nothing to ask about.
    const foundationModelId = props.FoundationModelId ? String(props.FoundationModelId) : undefined;
    const agreement = foundationModelId ? await waitForAgreement(foundationModelId) : 'unknown';
    return { PhysicalResourceId: physicalId, Data: { StopReason: probe.stopReason, Agreement: agreement } };
  };
}

const runtime = new BedrockRuntimeClient({ maxAttempts: 3 });
const control = new BedrockClient({ maxAttempts: 3 });

export const handler = createModelProbeHandler({
  converse: (input, signal) => runtime.send(new ConverseCommand(input), { abortSignal: signal }),
  availability: async (modelId) => {
    const answer = await control.send(new GetFoundationModelAvailabilityCommand({ modelId }));
    return {
      agreementStatus: answer.agreementAvailability?.status,
      errorMessage: answer.agreementAvailability?.errorMessage,
    };
  },
});
