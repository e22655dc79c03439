import { describe, expect, it } from 'vitest';
import { buildPrompt } from '../../../functions/core/prompt.ts';
import { composeAnswer, splitSources } from '../../../local/emulators/local-model.ts';

const passage = (id: string, title: string, text: string) => ({
  id,
  title,
  uri: `s3://kb/${id}.md`,
  score: 0.8,
  excerpt: text,
  text,
});
const PASSAGES = [
  passage(
    'fund',
    'Emergency fund',
    'A common guideline is three to six months of essential living expenses.',
  ),
  passage('hsa', 'HSA', 'A health savings account lets you save for medical costs with pre-tax money.'),
];

/** The local model's answer to the prompt the service builds (passages in the last user turn). */
function answer(question: string, previousQuestion?: string) {
  const prompt = buildPrompt({ profile: undefined, passages: PASSAGES, history: [], question });
  const { sources } = splitSources(prompt.messages.at(-1)?.content ?? '');
  return composeAnswer({
    system: `${prompt.system}\n${sources}`,
    question,
    priorTurns: previousQuestion ? 1 : 0,
    ...(previousQuestion ? { previousQuestion } : {}),
  });
}

describe('the local model cites as it is asked to', () => {
  it('asks the model for [n] markers in the system prompt', () => {
    expect(buildPrompt({ profile: undefined, passages: [], history: [], question: 'q' }).system).toMatch(
      /square brackets, like \[1\]/,
    );
  });

  it('writes [n] after each point it takes from source n, and none for a source it did not use', () => {
    const text = answer('What is a health savings account?');
    expect(text).toMatch(/medical costs with pre-tax money\. \[2\]$/m);
    expect(text).not.toMatch(/\[1\]/);
  });

  it('answers a follow-up that names no topic from the question it follows', () => {
    const text = answer(
      'How big should it be?',
      'How many months of expenses should my emergency fund hold?',
    );
    expect(text).toMatch(/^- .*essential living expenses\. \[1\]$/m);
    expect(text).not.toMatch(/I have no source/);
  });
});
