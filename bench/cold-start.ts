import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { ChatStack } from '../lib/chat-stack.ts';
import { DEFAULT_CONFIG } from '../lib/config.ts';
import { median } from './stats.ts';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..');

export interface ColdStart {
  bundles: Record<string, number>;
  streamInitMs: number[];
  streamInitMedianMs: number;
}

/**
 * Builds the bundles exactly as `cdk synth` does (the stack's own NodejsFunction settings): one per function
 * bundled from this repo, named from its logical id (`ChatStreamFunction1A2B3C4D` is `chat-stream`). CDK's
 * own Provider framework functions ship no bundle of ours and are left out.
 */
function buildBundles(): Record<string, string> {
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

/**
 * Size of each bundle, and the time a fresh Node process takes to import the built stream bundle and
 * run its init (config, clients, the Redis connection), median of `runs`.
 */
export async function measureColdStart(env: Record<string, string>, runs: number): Promise<ColdStart> {
  const bundles = buildBundles();
  const sizes = Object.fromEntries(
    Object.entries(bundles).map(([name, file]) => [name, statSync(file).size]),
  );
  const script = `const t0 = performance.now(); await import(${JSON.stringify(pathToFileURL(bundles['chat-stream'] ?? '').href)}); console.log(JSON.stringify({ initMs: performance.now() - t0 })); process.exit(0);`;
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const { stdout } = await run(
      process.execPath,
      ['--import', join(ROOT, 'local/lambda-runtime/register.ts'), '--input-type=module', '-e', script],
      { env: { ...process.env, ...env, POWERTOOLS_LOG_LEVEL: 'SILENT' } },
    );
    const line = stdout.trim().split('\n').at(-1) ?? '{}';
    times.push(Math.round((JSON.parse(line) as { initMs: number }).initMs * 100) / 100);
  }
  return { bundles: sizes, streamInitMs: times, streamInitMedianMs: median(times) };
}
