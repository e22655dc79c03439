/**
 * The local stand-in for a foundation model: it answers from the passages it was given, so a RAG
 * answer is visibly grounded, and otherwise says it has no source. It writes Markdown as a chat model
 * does (a list, bold, a table or a code block when asked), so the page renders real shapes locally.
 * Deterministic, no weights.
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
  /** The user's question before this one: a follow-up ("How big should it be?") is about it too. */
  previousQuestion?: string;
}

interface Sentence {
  sentence: string;
  /** The `<source id>` the sentence comes from, cited as `[id]` as a real model is asked to. */
  source: string | undefined;
}

const SOURCE_BLOCK = /<source id="(\d+)"[^>]*>([\s\S]*?)<\/source>/g;

const sentencesOf = (text: string, source: string | undefined): Sentence[] =>
  text
    .replace(/<[^>]*>/g, '\n')
    .split(/(?<=[.!?])\s+|\n+/)
    .map((s) => s.trim())
    .filter((s) => s.length > 20)
    .map((sentence) => ({ sentence, source }));

/** The prompt's sentences: the instructions', then each source's with its id. */
const promptSentences = (system: string): Sentence[] => [
  ...sentencesOf(system.replace(SOURCE_BLOCK, '\n'), undefined),
  ...[...system.matchAll(SOURCE_BLOCK)].flatMap((match) => sentencesOf(match[2] ?? '', match[1])),
];

/** The three sentences sharing most words with `asked`, in the prompt's order. */
function rankSentences(sentences: Sentence[], asked: Set<string>) {
  return sentences
    .map((entry, index) => ({
      ...entry,
      index,
      score: wordsOf(entry.sentence).filter((w) => asked.has(w)).length,
    }))
    .filter((s) => s.score > 0)
    .sort((a, b) => b.score - a.score || a.index - b.index)
    .slice(0, 3)
    .sort((a, b) => a.index - b.index);
}

/** A question that asks for a comparison gets a table, as a real model would write one. */
const WANTS_TABLE = /\b(table|compare|comparison|versus|vs\.?)\b/i;
/** A question that asks for code gets a fenced code block. */
const WANTS_CODE = /\b(code|script|snippet|function|program|python|javascript|typescript|formula)\b/i;
const WANTS_JAVASCRIPT = /\b(javascript|typescript|js|ts|node)\b/i;

const PYTHON_EXAMPLE = [
  '```python',
  'def compound_interest(principal, annual_rate, years, per_year=12):',
  '    """Balance after `years`, interest compounded `per_year` times a year."""',
  '    return principal * (1 + annual_rate / per_year) ** (per_year * years)',
  '',
  'print(round(compound_interest(10_000, 0.05, 10), 2))  # 16470.09',
  '```',
].join('\n');

const JAVASCRIPT_EXAMPLE = [
  '```javascript',
  '// Balance after `years`, interest compounded `perYear` times a year.',
  'function compoundInterest(principal, annualRate, years, perYear = 12) {',
  '  return principal * (1 + annualRate / perYear) ** (perYear * years);',
  '}',
  '',
  'console.log(compoundInterest(10_000, 0.05, 10).toFixed(2)); // "16470.09"',
  '```',
].join('\n');

/** Bolds the longest run of asked words in a sentence, as a model stresses the term it was asked about. */
function stressAsked(sentence: string, asked: Set<string>): string {
  const words = [...sentence.matchAll(/[A-Za-z0-9][A-Za-z0-9'’-]*/g)];
  let best: { from: number; to: number } | undefined;
  let runStart = -1;
  for (let i = 0; i <= words.length; i++) {
    const word = words[i]?.[0].toLowerCase();
    const hit = word !== undefined && word.length > 1 && !STOPWORDS.has(word) && asked.has(word);
    if (hit && runStart === -1) runStart = i;
    if (!hit && runStart !== -1) {
      if (!best || i - runStart > best.to - best.from) best = { from: runStart, to: i };
      runStart = -1;
    }
  }
  if (!best) return sentence;
  const first = words[best.from];
  const last = words[best.to - 1];
  if (!first || !last) return sentence;
  const from = first.index;
  const to = last.index + last[0].length;
  return `${sentence.slice(0, from)}**${sentence.slice(from, to)}**${sentence.slice(to)}`;
}

/** The question as a quote inside the answer: one line, without Markdown of its own. */
const quoted = (question: string) =>
  question
    .replace(/[`*_#|>[\]~]/g, '')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 80);

/**
 * The answer, in Markdown as a chat model writes it: a lead sentence, the grounded points as a list
 * with the asked term in bold, and a table or a code block when the question asks for one.
 */
export function composeAnswer({ system, question, priorTurns, previousQuestion }: ModelInput): string {
  let asked = new Set(wordsOf(question));
  const sentences = promptSentences(system);
  let ranked = rankSentences(sentences, asked);
  // A follow-up that names no topic of its own is read with the question it follows.
  if (ranked.length === 0 && previousQuestion) {
    asked = new Set([...asked, ...wordsOf(previousQuestion)]);
    ranked = rankSentences(sentences, asked);
  }
  const opening = priorTurns > 0 ? 'Building on what we discussed, ' : '';
  const blocks: string[] = [];
  if (ranked.length === 0) {
    blocks.push(
      `${opening}I have no source on "${quoted(question)}", so take this as general guidance:`,
      '- Start from your goals.\n- Keep costs low.\n- Check the details with a qualified adviser.',
    );
  } else {
    const lead = opening ? `${opening}here` : 'Here';
    blocks.push(`${lead} is what the sources say.`);
    blocks.push(
      ranked.map((r) => `- ${stressAsked(r.sentence, asked)}${r.source ? ` [${r.source}]` : ''}`).join('\n'),
    );
  }
  if (WANTS_TABLE.test(question)) {
    const rows = (ranked.length ? ranked.map((r) => r.sentence) : ['No source covers this question.']).map(
      (sentence, index) => `| ${index + 1} | ${sentence.replace(/\|/g, '/')} |`,
    );
    blocks.push(['| # | Key point |', '| --- | --- |', ...rows].join('\n'));
  }
  if (WANTS_CODE.test(question)) {
    blocks.push(WANTS_JAVASCRIPT.test(question) ? JAVASCRIPT_EXAMPLE : PYTHON_EXAMPLE);
  }
  return blocks.join('\n\n');
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
