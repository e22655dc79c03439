import type { ModelStats } from './emulator-process.ts';
import type { MemoryStats, PhaseStats } from './environment-process.ts';
import { type RequestSpec, runLoad, type Sample } from './load.ts';
import type { Latencies } from './profiles.ts';
import type { Emulators, Environment } from './stack-client.ts';

export type NextRequest = (index: number, worker: number) => Promise<RequestSpec> | RequestSpec;

export interface Measured {
  samples: Sample[];
  errors: string[];
  /** What the environment process spent and saw during the load. */
  phase: PhaseStats;
  /** What the Bedrock emulator saw during the load. */
  model: ModelStats;
}

/** `n` turns at concurrency `c` against one environment, with its CPU time and the model's own pace. */
export async function measure(
  environment: Environment,
  emulators: Emulators,
  n: number,
  c: number,
  next: NextRequest,
  latencies: Latencies,
): Promise<Measured> {
  await emulators.modelStats();
  await environment.start();
  const { samples, errors } = await runLoad(environment.url, n, c, next, latencies);
  const phase = await environment.stop();
  const model = await emulators.modelStats();
  if (errors.length > 0) {
    process.stderr.write(`bench: ${environment.design}: ${errors.length} errors, first: ${errors[0]}\n`);
  }
  return { samples, errors, phase, model };
}

/**
 * Live memory per stream: one round of `c` turns, a full-GC heap figure taken once all `c` have received
 * their first token (every stream open and mid-answer), and another once they all ended; the difference
 * over the streams that were open. Both figures are taken minutes apart at most, so caches and compiled
 * code that grow over a run weigh less than against an idle figure from before the run.
 */
export async function memoryPerStream(
  environment: Environment,
  c: number,
  next: NextRequest,
  latencies: Latencies,
): Promise<{ open: number; heapKiBPerStream: number; rssKiBPerStream: number } | undefined> {
  let during: Promise<MemoryStats> | undefined;
  await runLoad(environment.url, c, c, next, latencies, {
    onFirstTokens: { count: c, run: () => (during = environment.memory()) },
  });
  const open = await during;
  const after = await environment.memory();
  if (!open || open.open === 0) return undefined;
  const kib = (bytes: number) => Math.round((bytes / 1024 / open.open) * 10) / 10;
  return {
    open: open.open,
    heapKiBPerStream: kib(open.heapBytes - after.heapBytes),
    rssKiBPerStream: kib(open.rssBytes - after.rssBytes),
  };
}

/** CPU milliseconds the environment spent per turn and per token streamed. */
export function cpuCost(measured: Measured) {
  const cpu = measured.phase.cpuUserMs + measured.phase.cpuSystemMs;
  const turns = measured.samples.length + measured.errors.length;
  const tokens = measured.samples.reduce((sum, s) => sum + s.tokens, 0);
  const round = (v: number) => Math.round(v * 1000) / 1000;
  return {
    cpuMsPerTurn: turns > 0 ? round(cpu / turns) : Number.NaN,
    logBytesPerTurn: turns > 0 ? Math.round(measured.phase.logBytes / turns) : Number.NaN,
    cpuMsPerToken: tokens > 0 ? round(cpu / tokens) : Number.NaN,
    eventLoopUtilization: Math.round(measured.phase.eventLoopUtilization * 1000) / 1000,
  };
}
