import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { loadOrCreateSigningKey, mintToken } from '../local/emulators/oidc-issuer.ts';
import { STATE_DIR } from '../local/stack/stack.ts';
import type { EmulatorReady, EmulatorRequest, ModelStats } from './emulator-process.ts';
import type {
  Design,
  EnvironmentOptions,
  EnvironmentReady,
  EnvironmentRequest,
  MemoryStats,
  PhaseStats,
} from './environment-process.ts';
import type { Latencies } from './profiles.ts';

const ENTRY = join(import.meta.dirname, 'stack-process.ts');

/** One request at a time over IPC: each answer is the child's next message. */
function asker<Request>(child: ChildProcess) {
  let chain: Promise<unknown> = Promise.resolve();
  return <T>(request: Request): Promise<T> => {
    const answer = chain.then(async () => {
      child.send(request as object);
      const [reply] = (await once(child, 'message')) as [T];
      return reply;
    });
    chain = answer.catch(() => undefined);
    return answer;
  };
}

async function start<Ready>(
  options: object,
  execArgv: string[] = [],
  stderr: 'inherit' | 'ignore' = 'inherit',
) {
  const child = fork(ENTRY, [JSON.stringify(options)], {
    execPath: process.execPath,
    execArgv,
    stdio: ['ignore', 'ignore', stderr, 'ipc'],
  });
  const [ready] = (await Promise.race([
    once(child, 'message'),
    once(child, 'exit').then(([code]) => {
      throw new Error(`bench child exited with ${code} before it was ready`);
    }),
  ])) as [Ready];
  return { child, ready };
}

const stop = async (child: ChildProcess) => {
  if (child.exitCode !== null) return;
  child.send({ type: 'close' });
  await once(child, 'exit');
};

export interface Emulators {
  env: Record<string, string>;
  cacheInspectUrl?: string;
  /** What the cache is, as the local stack describes it. */
  cache: string;
  mint(subject: string): Promise<string>;
  setLatencies(latencies: Latencies, prefillMsPer1kTokens?: number): Promise<void>;
  modelStats(): Promise<ModelStats>;
  close(): Promise<void>;
}

/** The emulated AWS services in a child process. */
export async function spawnEmulators(latencies: Latencies, consumer = false): Promise<Emulators> {
  const { child, ready } = await start<EmulatorReady>({ role: 'emulators', latencies, consumer });
  const key = await loadOrCreateSigningKey(join(STATE_DIR, 'dev-signing-key.json'));
  const ask = asker<EmulatorRequest>(child);
  return {
    env: ready.env,
    cacheInspectUrl: ready.cacheInspectUrl,
    cache: ready.cache,
    mint: (subject) => mintToken(key, { issuer: ready.issuer, subject }),
    setLatencies: async (next, prefillMsPer1kTokens) => {
      await ask({ type: 'latencies', latencies: next, prefillMsPer1kTokens });
    },
    modelStats: () => ask<ModelStats>({ type: 'model-stats' }),
    close: () => stop(child),
  };
}

export interface Environment {
  design: Design;
  url: string;
  initMs: number;
  /** Starts a measured phase: resets the counters, takes the idle memory figure. */
  start(): Promise<void>;
  stop(): Promise<PhaseStats>;
  /** Live memory now, after a full GC (for a moment when streams are in flight). */
  memory(): Promise<MemoryStats>;
  close(): Promise<void>;
}

/**
 * One design's handler as one execution environment, in a child process of its own; `nodeFlags` are
 * added to its Node command line (what NODE_OPTIONS would carry in Lambda).
 */
export async function spawnEnvironment(
  options: Omit<EnvironmentOptions, 'role'>,
  nodeFlags: string[] = [],
): Promise<Environment> {
  // Its logs (JSON lines on stdout and stderr) are what CloudWatch Logs would ingest: counted, not shown,
  // unless BENCH_ENVIRONMENT_LOGS=1.
  const { child, ready } = await start<EnvironmentReady>(
    { role: 'environment', ...options },
    ['--expose-gc', ...nodeFlags],
    process.env.BENCH_ENVIRONMENT_LOGS === '1' ? 'inherit' : 'ignore',
  );
  const ask = asker<EnvironmentRequest>(child);
  return {
    design: options.design,
    url: ready.url,
    initMs: ready.initMs,
    start: async () => {
      await ask({ type: 'start' });
    },
    stop: () => ask<PhaseStats>({ type: 'stop' }),
    memory: () => ask<MemoryStats>({ type: 'memory' }),
    close: () => stop(child),
  };
}
