import { onTestFinished } from 'vitest';
import type { LocalStack } from '../../local/stack/stack.ts';

/**
 * The local model's tokens this slow until the current test ends, so an answer is still running when the
 * test acts on it (a stop, a resume, a second turn). Elsewhere tokens come at once: waiting on them only
 * lengthens the suite.
 */
export function slowTokens(stack: LocalStack, perTokenDelayMs: number): void {
  const before = stack.bedrock.options.perTokenDelayMs;
  stack.bedrock.options.perTokenDelayMs = perTokenDelayMs;
  onTestFinished(() => {
    stack.bedrock.options.perTokenDelayMs = before;
  });
}
