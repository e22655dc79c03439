import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

// The turn's use case stays readable in one screen: the lint's complexity rule bounds branching, this
// bounds length (runTurn was 172 lines before it was split into its steps).
const ROOT = join(import.meta.dirname, '..', '..');
const MAX_LINES = 70;

/** Lines from the line that opens `signature` to the first line after it that closes at `indent`. */
function linesOf(file: string, signature: string, indent: string): number {
  const lines = readFileSync(join(ROOT, file), 'utf8').split('\n');
  const start = lines.findIndex((line) => line.includes(signature));
  if (start < 0) throw new Error(`${signature} not found in ${file}`);
  const end = lines.findIndex((line, i) => i > start && line === `${indent}}`);
  return end - start + 1;
}

describe('the turn use case', () => {
  it(`runTurn and ChatTurn's run each fit in ${MAX_LINES} lines`, () => {
    expect(linesOf('functions/core/turn.ts', 'export async function runTurn(', '')).toBeLessThanOrEqual(
      MAX_LINES,
    );
    expect(linesOf('functions/core/chat-turn.ts', 'async #run(', '  ')).toBeLessThanOrEqual(MAX_LINES);
  });

  it('measures what it names (a control on a known function)', () => {
    expect(linesOf('test/tooling/turn-size.test.ts', 'function linesOf(', '')).toBe(7);
  });
});
