/**
 * The local stand-in for a foundation model: it answers from the passages it was given, so a RAG
 * answer is visibly grounded, and otherwise says it has no source. Deterministic, no weights.
 */
const STOPWORDS = new Set(
  'a an and are as at be by can do does for from how i in is it me my of on or should that the this to was what when where which who why will with you your'.split(
    ' ',
  ),
);

const wordsOf = (text: string) =>
  (text.toLowerCase().match(/[a-z0-9]+/g) ?? []).filter((w) => w.length > 1 && !STOPWORDS.has(w));

export interface ModelInput {
  system: string;
  question: string;
  priorTurns: number;
}

export function composeAnswer({ system, question, priorTurns }: ModelInput): string {
  const asked = new Set(wordsOf(question));
  const sentences = system
    .replace(/<[^>]*>/g, '\n')
    .split(/(?<=[.!?])\s+|\n+/)
    .map((s) => s.trim())
    .filter((s) => s.length > 20);
  const ranked = sentences
    .map((sentence, index) => ({
      sentence,
      index,
      score: wordsOf(sentence).filter((w) => asked.has(w)).length,
    }))
    .filter((s) => s.score > 0)
    .sort((a, b) => b.score - a.score || a.index - b.index)
    .slice(0, 3)
    .sort((a, b) => a.index - b.index);
  const opening = priorTurns > 0 ? 'Building on what we discussed, ' : '';
  if (ranked.length === 0) {
    return `${opening}I have no source on "${question.slice(0, 80)}", so take this as general guidance: start from your goals, keep costs low, and check the details with a qualified adviser.`;
  }
  const lead = opening ? `${opening}here` : 'Here';
  return `${lead} is what the sources say. ${ranked.map((r) => r.sentence).join(' ')}`;
}

/**
 * A user turn may carry the retrieved passages (`<sources>…</sources>` before the question), which keeps
 * them after the cacheable history: the passages are context, the rest is what was asked.
 */
export function splitSources(turn: string): { sources: string; question: string } {
  const match = /<sources>([\s\S]*?)<\/sources>\s*/.exec(turn);
  if (!match) return { sources: '', question: turn };
  return { sources: match[1] ?? '', question: turn.replace(match[0], '').trim() };
}

/** Splits an answer into the word-sized deltas a model would stream, whitespace kept. */
export const toDeltas = (answer: string): string[] => answer.split(/(?<=\s)/);

export const estimateTokens = (text: string): number => Math.max(1, Math.ceil(text.length / 4));

/** A title request (the consumer's): the question's first words, as a small model would shorten it. */
export function composeTitle(prompt: string): string {
  const question = /^Question: (.*)$/m.exec(prompt)?.[1] ?? prompt;
  const words = question
    .replace(/[^\p{L}\p{N}\s'-]/gu, ' ')
    .split(/\s+/)
    .filter(Boolean)
    .slice(0, 6);
  const title = words.join(' ');
  return title ? `${title[0]?.toUpperCase()}${title.slice(1)}` : 'New conversation';
}
