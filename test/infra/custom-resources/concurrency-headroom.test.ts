import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import {
  type AccountConcurrency,
  createConcurrencyHeadroomHandler,
} from '../../../lib/custom-resources/concurrency-headroom.ts';

const event = (requestType: 'Create' | 'Update' | 'Delete', reserved: number, previous?: number) =>
  ({
    RequestType: requestType,
    PhysicalResourceId: 'concurrency-headroom',
    ResourceProperties: { ServiceToken: 'arn', ReservedConcurrency: String(reserved) },
    OldResourceProperties:
      previous === undefined ? undefined : { ServiceToken: 'arn', ReservedConcurrency: String(previous) },
  }) as unknown as CloudFormationCustomResourceEvent;

function account(settings: AccountConcurrency) {
  let reads = 0;
  const handler = createConcurrencyHeadroomHandler(async () => {
    reads++;
    return settings;
  });
  return { handler, reads: () => reads };
}

describe('concurrency headroom check', () => {
  it('fails a first deploy on a new account (10 executions), naming the value that would fit and the quota', async () => {
    const { handler } = account({ limit: 10, unreserved: 10 });
    await expect(handler(event('Create', 100))).rejects.toThrow(
      'This account\'s Lambda concurrency is 10 with 10 unreserved: reserving 100 for the stream function would leave -90, below Lambda\'s minimum of 100. Deploy with -c chat:streamReservedConcurrency=0 (or none), or ask Service Quotas for more "Concurrent executions" (L-B99A9384)',
    );
  });

  it('passes on an account with room (1000 executions), and at exactly 100 left', async () => {
    expect((await account({ limit: 1000, unreserved: 1000 }).handler(event('Create', 100))).Data).toEqual({
      Unreserved: '1000',
    });
    await expect(
      account({ limit: 200, unreserved: 200 }).handler(event('Create', 100)),
    ).resolves.toBeDefined();
    await expect(account({ limit: 199, unreserved: 199 }).handler(event('Create', 100))).rejects.toThrow(
      /would leave 99/,
    );
  });

  it('counts only the increase on an update (the function already holds its reservation), and reads nothing otherwise', async () => {
    const same = account({ limit: 1000, unreserved: 150 });
    await same.handler(event('Update', 100, 100));
    await same.handler(event('Update', 50, 100));
    await same.handler(event('Delete', 100));
    expect(same.reads()).toBe(0);
    const more = account({ limit: 1000, unreserved: 150 });
    await expect(more.handler(event('Update', 150, 100))).resolves.toBeDefined();
    await expect(more.handler(event('Update', 200, 100))).rejects.toThrow(
      /reserving 200 .* would leave 50.*streamReservedConcurrency=150/,
    );
  });
});
