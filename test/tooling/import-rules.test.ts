import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { cruise, type ICruiseOptions, type IViolation } from 'dependency-cruiser';
import extractDepcruiseOptions from 'dependency-cruiser/config-utl/extract-depcruise-options';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The import rules of .dependency-cruiser.cjs, run through dependency-cruiser's API: the real tree passes,
// and a planted tree with one violation per rule fails on exactly those edges.
const ROOT = join(import.meta.dirname, '..', '..');
const SOURCES = ['bin', 'functions', 'lib', 'local', 'bench', 'test'];

let options: ICruiseOptions;
beforeAll(async () => {
  options = await extractDepcruiseOptions(join(ROOT, '.dependency-cruiser.cjs'));
});

async function violations(baseDir: string, paths: string[]): Promise<IViolation[]> {
  const result = await cruise(paths, { ...options, baseDir });
  if (typeof result.output === 'string') throw new Error('expected the JSON result');
  return result.output.summary.violations;
}

// Packages resolve through the planted tree's node_modules link: name them from node_modules/ on.
const edges = (found: IViolation[]) =>
  found
    .map((v) => `${v.rule.name}: ${v.from} -> ${v.to.replace(/^.*?node_modules\//, 'node_modules/')}`)
    .sort();

describe('import rules (dependency-cruiser)', () => {
  it('the real tree breaks no rule', async () => {
    expect(edges(await violations(ROOT, SOURCES))).toEqual([]);
  });

  describe('a planted tree', () => {
    let planted: string;
    const write = (file: string, text: string) => {
      mkdirSync(dirname(join(planted, file)), { recursive: true });
      writeFileSync(join(planted, file), text);
    };
    beforeAll(() => {
      planted = mkdtempSync(join(tmpdir(), 'import-rules-'));
      // Packages resolve through the real node_modules; the manifest decides what is a devDependency.
      symlinkSync(join(ROOT, 'node_modules'), join(planted, 'node_modules'), 'dir');
      write(
        'package.json',
        JSON.stringify({
          type: 'module',
          dependencies: { zod: '*' },
          devDependencies: { 'aws-cdk-lib': '*' },
        }),
      );
      write('functions/adapters/cache.ts', 'export const cache = 1;\n');
      write(
        'functions/contracts/keys.ts',
        "import type { Limits } from './limits.ts';\nexport type Keys = Limits;\n",
      );
      write('functions/contracts/limits.ts', "import * as z from 'zod';\nexport type Limits = z.ZodType;\n");
      write(
        'functions/core/turn.ts',
        [
          "import { SQSClient } from '@aws-sdk/client-sqs';",
          "import type { Context } from 'aws-lambda';",
          "import { createServer } from 'node:http';",
          "import { cache } from '../adapters/cache.ts';",
          'export const turn = [SQSClient, cache, createServer] as unknown as Context;',
          '',
        ].join('\n'),
      );
      // Allowed: the core may use itself, the contracts and plain packages.
      write(
        'functions/core/fine.ts',
        "import * as z from 'zod';\nimport type { Keys } from '../contracts/keys.ts';\nimport { turn } from './turn.ts';\nexport const fine = [z, turn] as unknown as Keys;\n",
      );
      write(
        'functions/chat-stream/routes/turns.ts',
        "import { cache } from '../../adapters/cache.ts';\nexport const turns = cache;\n",
      );
      write(
        'functions/chat-stream/wire/native.ts',
        "import { turns } from '../routes/turns.ts';\nimport { sse } from './sse.ts';\nexport const native = [turns, sse];\n",
      );
      // Allowed: a wire format uses the SSE writer beside it.
      write('functions/chat-stream/wire/sse.ts', 'export const sse = 1;\n');
      write(
        'functions/persist/handler.ts',
        "import { App } from 'aws-cdk-lib';\nimport { stack } from '../../lib/stack.ts';\nexport const handler = [App, stack];\n",
      );
      write('lib/stack.ts', "import { dev } from '../local/dev.ts';\nexport const stack = dev;\n");
      write(
        'lib/custom-resources/probe.ts',
        "import { Duration } from 'aws-cdk-lib';\nimport { stack } from '../stack.ts';\nimport { other } from './other.ts';\nexport const handler = [Duration, stack, other];\n",
      );
      write('lib/custom-resources/other.ts', 'export const other = 1;\n');
      write('local/dev.ts', "import { b } from './b.ts';\nexport const dev = b;\n");
      write('local/b.ts', "import { dev } from './dev.ts';\nexport const b = () => dev;\n");
    });
    afterAll(() => rmSync(planted, { recursive: true, force: true }));

    it('fails on each planted violation, one per rule at least, and not on the allowed imports', async () => {
      expect(edges(await violations(planted, ['functions', 'lib', 'local']))).toEqual([
        'contracts-import-nothing: functions/contracts/keys.ts -> functions/contracts/limits.ts',
        'contracts-import-nothing: functions/contracts/limits.ts -> node_modules/zod/index.d.cts',
        'core-not-to-aws-or-http: functions/core/turn.ts -> http',
        'core-not-to-aws-or-http: functions/core/turn.ts -> node_modules/@aws-sdk/client-sqs/dist-es/index.js',
        'core-not-to-aws-or-http: functions/core/turn.ts -> node_modules/@types/aws-lambda/index.d.ts',
        'core-only-core-and-contracts: functions/core/turn.ts -> functions/adapters/cache.ts',
        'deploy-time-handlers-stand-alone: lib/custom-resources/probe.ts -> lib/stack.ts',
        'edge-not-to-adapters: functions/chat-stream/routes/turns.ts -> functions/adapters/cache.ts',
        'functions-not-to-infra: functions/persist/handler.ts -> lib/stack.ts',
        'infra-not-to-local-or-bench: lib/stack.ts -> local/dev.ts',
        'lambda-code-not-to-dev-dep: functions/persist/handler.ts -> node_modules/aws-cdk-lib/index.js',
        'lambda-code-not-to-dev-dep: lib/custom-resources/probe.ts -> node_modules/aws-cdk-lib/index.js',
        'no-circular: local/b.ts -> local/dev.ts',
        'wire-formats-stand-alone: functions/chat-stream/wire/native.ts -> functions/chat-stream/routes/turns.ts',
      ]);
    });
  });
});
