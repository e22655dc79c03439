import { invalidField } from './errors.ts';

/**
 * Conversation search works on words: each stored message and title is cut into normalized terms (the
 * persist consumer keeps them per conversation), and a query is cut the same way, so both sides agree.
 */

/** Words that match nearly every conversation: never worth storing or searching for. */
const STOPWORDS = new Set(
  (
    'a an and are as at be but by can do does for from has have how i if in is it its me my of on or so ' +
    'that the their there these this to was we what when where which who why will with you your'
  ).split(' '),
);

const MIN_TERM = 2;
const MAX_TERM = 32;
/** Distinct terms kept per message: bounds the per-conversation item a long answer adds to. */
const MAX_TERMS_PER_MESSAGE = 300;
const MAX_QUERY_CHARS = 100;
/** Terms of one query (all must match): each is one more condition on every item read. */
const MAX_QUERY_TERMS = 5;

/** Lower case, accents off, a plain plural `s` off ("accounts" finds "account"). */
function normalize(word: string): string {
  const plain = word.normalize('NFKD').replace(/\p{M}/gu, '').toLowerCase();
  return plain.length > 3 && plain.endsWith('s') && !plain.endsWith('ss') ? plain.slice(0, -1) : plain;
}

/** The distinct searchable terms of a text, in order of first use, at most `max`. */
export function termsOf(text: string, max = MAX_TERMS_PER_MESSAGE): string[] {
  const terms = new Set<string>();
  for (const word of text.match(/[\p{L}\p{N}]+/gu) ?? []) {
    if (word.length < MIN_TERM || word.length > MAX_TERM) continue;
    const term = normalize(word);
    if (term.length < MIN_TERM || STOPWORDS.has(term)) continue;
    terms.add(term);
    if (terms.size >= max) break;
  }
  return [...terms];
}

/** A person's query as terms that must all match; a 400 naming `q` when it holds none or is too long. */
export function queryTerms(q: string): string[] {
  if (q.length > MAX_QUERY_CHARS) {
    throw invalidField('q', `q must be at most ${MAX_QUERY_CHARS} characters.`);
  }
  const terms = termsOf(q, MAX_QUERY_TERMS + 1);
  if (terms.length === 0) {
    throw invalidField('q', 'q must hold a word of at least 2 letters or digits that is not a stopword.');
  }
  if (terms.length > MAX_QUERY_TERMS) {
    throw invalidField('q', `q may hold at most ${MAX_QUERY_TERMS} words.`);
  }
  return terms;
}
