import { fork } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { loadOrCreateSigningKey, mintToken } from '../local/emulators/oidc-issuer.ts';
import { STATE_DIR } from '../local/stack.ts';
import type { Latencies } from './profiles.ts';
import type { Design, StackReady, StackRequest } from './stack-process.ts';

export interface StackUnderTest {
  url: string;
  baselineUrl: string;
  limitUrl: string;
  env: Record<string, string>;
  mint(subject: string): Promise<string>;
  setLatencies(latencies: Latencies): Promise<void>;
  firstByteTimes(design: Design): Promise<number[]>;
  close(): Promise<void>;
}

/** Starts `bench/stack-process.ts` in a child process and talks to it over IPC, one request at a time. */
export async function spawnStack(options: {
  latencies: Latencies;
  holdBelowBytes?: number;
  padding?: number;
}): Promise<StackUnderTest> {
  const child = fork(join(import.meta.dirname, 'stack-process.ts'), [JSON.stringify(options)], {
    execPath: process.execPath,
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const [ready] = (await once(child, 'message')) as [StackReady];
  const key = await loadOrCreateSigningKey(join(STATE_DIR, 'dev-signing-key.json'));
  let chain: Promise<unknown> = Promise.resolve();
  const ask = <T>(request: StackRequest): Promise<T> => {
    const answer = chain.then(async () => {
      child.send(request);
      const [reply] = (await once(child, 'message')) as [T];
      return reply;
    });
    chain = answer.catch(() => undefined);
    return answer;
  };
  return {
    url: ready.url,
    baselineUrl: ready.baselineUrl,
    limitUrl: ready.limitUrl,
    env: ready.env,
    mint: (subject) => mintToken(key, { issuer: ready.issuer, subject }),
    setLatencies: async (latencies) => {
      await ask({ type: 'latencies', latencies });
    },
    firstByteTimes: async (design) =>
      (await ask<{ times: number[] }>({ type: 'first-byte-times', design })).times,
    close: async () => {
      child.send({ type: 'close' } satisfies StackRequest);
      await once(child, 'exit');
    },
  };
}
