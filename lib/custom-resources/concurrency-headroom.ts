import { GetAccountSettingsCommand, LambdaClient } from '@aws-sdk/client-lambda';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import type { ProviderResponse } from './jwks-fetch.ts';

/**
 * Deploy time, before the VPC and the cache: checks that the account can reserve the stream function's
 * concurrency. Lambda refuses a reservation that leaves fewer than 100 unreserved executions, and new
 * accounts start with a low concurrency quota; without this check the function fails after the VPC,
 * endpoints and ElastiCache were built, and the rollback takes 10-20 minutes.
 */

/** Lambda keeps at least this many executions unreserved in every account. */
export const UNRESERVED_MINIMUM = 100;

export interface AccountConcurrency {
  limit: number;
  unreserved: number;
}

export type ReadAccountConcurrency = () => Promise<AccountConcurrency>;

const reservationOf = (properties: Record<string, unknown> | undefined) => {
  const value = Number(properties?.ReservedConcurrency ?? 0);
  return Number.isFinite(value) ? value : 0;
};

export function createConcurrencyHeadroomHandler(read: ReadAccountConcurrency) {
  return async (event: CloudFormationCustomResourceEvent): Promise<ProviderResponse> => {
    const physicalId = event.RequestType === 'Create' ? 'concurrency-headroom' : event.PhysicalResourceId;
    if (event.RequestType === 'Delete') return { PhysicalResourceId: physicalId };
    const wanted = reservationOf(event.ResourceProperties);
    // On an update the function already holds its previous reservation: only the increase is new.
    const held = event.RequestType === 'Update' ? reservationOf(event.OldResourceProperties) : 0;
    const extra = wanted - held;
    if (extra <= 0) return { PhysicalResourceId: physicalId };
    const { limit, unreserved } = await read();
    const left = unreserved - extra;
    if (left < UNRESERVED_MINIMUM)
      throw new Error(
        `This account's Lambda concurrency is ${limit} with ${unreserved} unreserved: reserving ${wanted} for the stream function would leave ${left}, below Lambda's minimum of ${UNRESERVED_MINIMUM}. Deploy with -c chat:streamReservedConcurrency=${Math.max(0, unreserved - UNRESERVED_MINIMUM + held)} (or none), or ask Service Quotas for more "Concurrent executions" (L-B99A9384) and deploy again.`,
      );
    return { PhysicalResourceId: physicalId, Data: { Unreserved: String(unreserved) } };
  };
}

const client = new LambdaClient({ maxAttempts: 3 });

export const handler = createConcurrencyHeadroomHandler(async () => {
  const { AccountLimit } = await client.send(new GetAccountSettingsCommand({}));
  return {
    limit: AccountLimit?.ConcurrentExecutions ?? 0,
    unreserved: AccountLimit?.UnreservedConcurrentExecutions ?? 0,
  };
});
