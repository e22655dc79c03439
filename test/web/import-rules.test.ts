import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { cruise, type IViolation } from 'dependency-cruiser';
import extractDepcruiseOptions from 'dependency-cruiser/config-utl/extract-depcruise-options';
import { afterAll, beforeAll, expect, it } from 'vitest';

// The two import rules about the chat page, proven on a planted tree: web/ reaches only the shared
// contracts, and nothing but the page's own tests imports web/.
const ROOT = join(import.meta.dirname, '..', '..');
let planted: string;

const write = (file: string, text: string) => {
  mkdirSync(dirname(join(planted, file)), { recursive: true });
  writeFileSync(join(planted, file), text);
};

beforeAll(() => {
  planted = mkdtempSync(join(tmpdir(), 'web-import-rules-'));
  symlinkSync(join(ROOT, 'node_modules'), join(planted, 'node_modules'), 'dir');
  write('package.json', JSON.stringify({ type: 'module' }));
  write('functions/contracts/cors.ts', 'export const cors = 1;\n');
  write('functions/core/turn.ts', 'export const turn = 1;\n');
  write('local/stack.ts', "import { App } from '../web/src/App.tsx';\nexport const stack = App;\n");
  write(
    'web/src/App.tsx',
    [
      "import { cors } from '../../functions/contracts/cors.ts';",
      "import { turn } from '../../functions/core/turn.ts';",
      "import { Part } from './Part.tsx';",
      'export const App = () => <Part n={cors + turn} />;',
      '',
    ].join('\n'),
  );
  write('web/src/Part.tsx', 'export const Part = ({ n }: { n: number }) => <b>{n}</b>;\n');
  write('test/web/app.test.ts', "import { App } from '../../web/src/App.tsx';\nexport const t = App;\n");
});
afterAll(() => rmSync(planted, { recursive: true, force: true }));

it('web/ imports only the contracts, and only its tests import web/', async () => {
  const options = await extractDepcruiseOptions(join(ROOT, '.dependency-cruiser.cjs'));
  const result = await cruise(['functions', 'local', 'web', 'test'], { ...options, baseDir: planted });
  if (typeof result.output === 'string') throw new Error('expected the JSON result');
  const found = result.output.summary.violations.map(
    (v: IViolation) => `${v.rule.name}: ${v.from} -> ${v.to}`,
  );
  expect(found.sort()).toEqual([
    'nothing-imports-web: local/stack.ts -> web/src/App.tsx',
    'web-only-contracts: web/src/App.tsx -> functions/core/turn.ts',
  ]);
});
