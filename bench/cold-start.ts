import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { FUNCTION_NODE_OPTIONS } from '../lib/bundling/node-options.ts';
import { runLoad } from './load.ts';
import type { Latencies } from './profiles.ts';
import { warmSessions } from './sessions.ts';
import { type Emulators, spawnEnvironment } from './stack-client.ts';
import { median, type Summary, summarize } from './stats.ts';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..');

export interface ColdStart {
  /** `cdk`: built by a synth of the stack, as deployed; `esbuild`: the stream bundle alone, same flags (bundles.ts). */
  builtBy: 'cdk' | 'esbuild';
  bundles: Record<string, number>;
  streamInitMs: number[];
  streamInitMedianMs: number;
  /** CPU time (user + system, every thread) of the same import + init: less moved by other work on the machine. */
  streamInitCpuMedianMs: number;
  /** The same with the functions' NODE_OPTIONS as deployed (the source map read at import). */
  streamInitDeployedMedianMs: number;
  /** A fresh Node process doing nothing, spawn to exit (the part of a cold start that is not ours). */
  nodeStartMedianMs: number;
}

/**
 * Builds the bundles exactly as `cdk synth` does (the stack's own NodejsFunction settings): one per function
 * bundled from this repo, named from its logical id (`ChatStreamFunction1A2B3C4D` is `chat-stream`). CDK's
 * own Provider framework functions ship no bundle of ours and are left out.
 */
async function buildWithCdk(): Promise<Record<string, string>> {
  const [{ App }, { Template }, { ChatStack }, { DEFAULT_CONFIG }] = await Promise.all([
    import('aws-cdk-lib'),
    import('aws-cdk-lib/assertions'),
    import('../lib/chat-stack.ts'),
    import('../lib/config.ts'),
  ]);
  const outdir = mkdtempSync(join(tmpdir(), 'bench-synth-'));
  const app = new App({ outdir, context: { 'aws:cdk:enable-asset-metadata': true } });
  const stack = new ChatStack(app, 'StreamingChat', {
    config: { ...DEFAULT_CONFIG, knowledgeBaseId: 'KB00000000' },
  });
  app.synth();
  const bundles: Record<string, string> = {};
  const functions = Template.fromStack(stack).findResources('AWS::Lambda::Function');
  for (const [id, fn] of Object.entries(functions)) {
    const bundle = join(outdir, fn.Metadata?.['aws:asset:path'] ?? '', 'index.mjs');
    if (!existsSync(bundle)) continue;
    const name = id
      .replace(/[0-9A-F]{8}$/, '')
      .replace(/Function$/, '')
      .replace(/(?<=[a-z0-9])(?=[A-Z])/g, '-')
      .toLowerCase();
    bundles[name] = bundle;
  }
  return bundles;
}

export async function buildBundles(
  how: ColdStart['builtBy'],
  esbuilt: string,
): Promise<Record<string, string>> {
  return how === 'cdk' ? buildWithCdk() : { 'chat-stream': esbuilt };
}

/** Per run: the wall and CPU time the script itself reports, or (`wall`) the whole process from spawn to exit. */
async function timeNode(
  args: string[],
  env: Record<string, string>,
  runs: number,
  wall = false,
): Promise<{ ms: number[]; cpuMs: number[] }> {
  const times = { ms: [] as number[], cpuMs: [] as number[] };
  const round = (ms: number) => Math.round(ms * 100) / 100;
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    const { stdout } = await run(process.execPath, args, {
      env: { ...process.env, ...env, POWERTOOLS_LOG_LEVEL: 'SILENT' },
    });
    const line = stdout.trim().split('\n').at(-1) ?? '{}';
    const reported = wall
      ? { ms: performance.now() - started, cpuMs: 0 }
      : (JSON.parse(line) as { ms: number; cpuMs: number });
    times.ms.push(round(reported.ms));
    times.cpuMs.push(round(reported.cpuMs));
  }
  return times;
}

/**
 * Size of each bundle, and the time a fresh Node process takes to import the built stream bundle and
 * run its init (config, clients, the Redis connection), median of `runs`; beside it, the same for a
 * process that imports nothing.
 */
export async function measureColdStart(
  env: Record<string, string>,
  bundles: Record<string, string>,
  builtBy: ColdStart['builtBy'],
  runs: number,
): Promise<ColdStart> {
  const sizes = Object.fromEntries(
    Object.entries(bundles).map(([name, file]) => [name, statSync(file).size]),
  );
  const bundle = pathToFileURL(bundles['chat-stream'] ?? '').href;
  const timed = (body: string) =>
    `const t0 = performance.now(); const c0 = process.cpuUsage(); ${body} const c = process.cpuUsage(c0); console.log(JSON.stringify({ ms: performance.now() - t0, cpuMs: (c.user + c.system) / 1000 })); process.exit(0);`;
  const register = ['--import', join(ROOT, 'local/lambda-runtime/register.ts'), '--input-type=module', '-e'];
  const importBundle = timed(`await import(${JSON.stringify(bundle)});`);
  const times = await timeNode([...register, importBundle], env, runs);
  const deployed = await timeNode(
    [...FUNCTION_NODE_OPTIONS.split(' '), ...register, importBundle],
    env,
    runs,
  );
  const node = await timeNode(['--input-type=module', '-e', ''], {}, Math.min(runs, 5), true);
  return {
    builtBy,
    bundles: sizes,
    streamInitMs: times.ms,
    streamInitMedianMs: median(times.ms),
    streamInitCpuMedianMs: median(times.cpuMs),
    streamInitDeployedMedianMs: median(deployed.ms),
    nodeStartMedianMs: median(node.ms),
  };
}

export interface ColdPath {
  runs: number;
  /** From spawning the environment's process to its handler ready: Node start, import, init. */
  readyMs: Summary;
  /** The import and init of the bundle alone, measured inside the fresh process. */
  initMs: Summary;
  /** The first request into the fresh environment: first byte at the Function URL emulator and at the client. */
  coldFirstByte: Summary;
  coldFirstByteClient: Summary;
  coldFirstTokenOverhead: Summary;
  /** The second request into the same environment, for comparison. */
  warmFirstByte: Summary;
  warmFirstTokenOverhead: Summary;
  /** Ready plus the cold first byte: what a user waits for on a cold start, before the model. */
  coldStartToFirstByte: Summary;
}

/**
 * The cold path as a user meets it: a fresh execution environment (a new process running the built
 * stream bundle) is started, then takes one turn on a warm session, then a second one.
 */
export async function coldPath(options: {
  emulators: Emulators;
  env: Record<string, string>;
  bundle: string;
  warmUrl: string;
  runs: number;
  latencies: Latencies;
}): Promise<ColdPath> {
  const { emulators, latencies } = options;
  const sessions = await warmSessions(emulators.mint, options.warmUrl, 1, 'cold-path');
  const session = sessions[0];
  const next = () => ({
    token: session?.token ?? '',
    body: { message: 'What is a Roth IRA?', session_id: session?.sessionId, use_rag: false },
  });
  const ready: number[] = [];
  const init: number[] = [];
  const cold = { byte: [] as number[], client: [] as number[], overhead: [] as number[] };
  const warm = { byte: [] as number[], overhead: [] as number[] };
  for (let i = 0; i < options.runs; i++) {
    const started = performance.now();
    const environment = await spawnEnvironment({ design: 'ours', env: options.env, bundle: options.bundle });
    ready.push(performance.now() - started);
    init.push(environment.initMs);
    try {
      for (const target of [cold, warm]) {
        await environment.start();
        const { samples, errors } = await runLoad(environment.url, 1, 1, next, latencies);
        const phase = await environment.stop();
        const sample = samples[0];
        if (!sample) throw new Error(`cold path turn failed: ${errors[0]}`);
        target.byte.push(phase.firstByteMs[0] ?? Number.NaN);
        target.overhead.push(sample.overheadMs);
        if (target === cold) cold.client.push(sample.firstByteMs);
      }
    } finally {
      await environment.close();
    }
  }
  return {
    runs: options.runs,
    readyMs: summarize(ready),
    initMs: summarize(init),
    coldFirstByte: summarize(cold.byte),
    coldFirstByteClient: summarize(cold.client),
    coldFirstTokenOverhead: summarize(cold.overhead),
    warmFirstByte: summarize(warm.byte),
    warmFirstTokenOverhead: summarize(warm.overhead),
    coldStartToFirstByte: summarize(ready.map((r, i) => r + (cold.client[i] ?? Number.NaN))),
  };
}
