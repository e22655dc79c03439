import { chat } from '../local/sse-client.ts';
import type { Latencies } from './profiles.ts';

export interface Sample {
  firstByteMs: number;
  firstTokenMs: number;
  lastByteMs: number;
  overheadMs: number;
  retrieveRan: boolean;
  server: Record<string, number>;
  cache: Record<string, string>;
}

export interface RequestSpec {
  token: string;
  body: { message: string; session_id?: string; use_rag?: boolean };
}

/**
 * Sends `n` requests at concurrency `c` over real HTTP and times each on the client: first byte (the
 * session_id event), first token, last byte. Server overhead = first token − injected model first-token
 * delay − injected Retrieve delay when Retrieve ran.
 */
export async function runLoad(
  url: string,
  n: number,
  c: number,
  next: (index: number, worker: number) => Promise<RequestSpec> | RequestSpec,
  latencies: Latencies,
): Promise<{ samples: Sample[]; errors: string[] }> {
  const samples: Sample[] = [];
  const errors: string[] = [];
  let issued = 0;
  const worker = async (id: number) => {
    while (issued < n) {
      const index = issued++;
      const spec = await next(index, id);
      const response = await chat(url, spec.token, spec.body);
      const done = response.events.find((e) => e.data.type === 'done')?.data as
        | { timings: Record<string, number>; cache: Record<string, string> }
        | undefined;
      const sessionAt = response.events.find((e) => e.data.type === 'session_id')?.at;
      const tokenAt = response.events.find((e) => e.data.type === 'token')?.at;
      if (response.status !== 200 || !done || sessionAt === undefined || tokenAt === undefined) {
        errors.push(
          `status ${response.status}: ${JSON.stringify(response.events.at(-1)?.data ?? response.json)}`,
        );
        continue;
      }
      const retrieveRan = done.cache.rag === 'miss';
      const firstTokenMs = tokenAt - response.startedAt;
      samples.push({
        firstByteMs: sessionAt - response.startedAt,
        firstTokenMs,
        lastByteMs: response.endedAt - response.startedAt,
        overheadMs: firstTokenMs - latencies.modelFirstToken - (retrieveRan ? latencies.retrieve : 0),
        retrieveRan,
        server: done.timings,
        cache: done.cache,
      });
    }
  };
  await Promise.all(Array.from({ length: c }, (_, id) => worker(id)));
  return { samples, errors };
}
