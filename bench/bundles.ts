import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BuildOptions } from 'esbuild';
import { bundleAliases } from '../lib/bundling/aliases.ts';

const ROOT = join(import.meta.dirname, '..');

/**
 * The flags the stack's `ChatFunction` gives esbuild (lib/functions.ts: ESM, node24, minified, the AWS
 * SDK bundled, an external source map without the sources' text, the `require` banner, and the aliases of
 * an on-demand Lambda function from lib/bundling/aliases.ts).
 */
const STACK_FLAGS: BuildOptions = {
  bundle: true,
  platform: 'node',
  target: 'node24',
  format: 'esm',
  minify: true,
  sourcemap: true,
  sourcesContent: false,
  mainFields: ['module', 'main'],
  banner: { js: "import{createRequire as __cr}from'module';const require=__cr(import.meta.url);" },
  outExtension: { '.js': '.mjs' },
  alias: bundleAliases('environment'),
  logLevel: 'error',
};

export interface EnvironmentBundles {
  /** The stream function, as deployed (functions/chat-stream/handler.ts). */
  ours: string;
  /** The comparison designs (bench/baseline-handler.ts) on the same adapters. */
  comparison: string;
}

/**
 * Builds what the environments run: the stream function's bundle as the stack builds it, and the
 * comparison designs the same way, so every design is measured as the same kind of built code. `root`
 * is the checkout to build from (another one A/B-tests a change on the same run's stack).
 */
export async function buildEnvironmentBundles(root = ROOT): Promise<EnvironmentBundles> {
  const { build } = await import('esbuild');
  const outdir = mkdtempSync(join(tmpdir(), 'bench-bundles-'));
  await build({
    ...STACK_FLAGS,
    entryPoints: {
      handler: join(root, 'functions/chat-stream/handler.ts'),
      'baseline-handler': join(root, 'bench/baseline-handler.ts'),
    },
    outdir,
  });
  return { ours: join(outdir, 'handler.mjs'), comparison: join(outdir, 'baseline-handler.mjs') };
}
