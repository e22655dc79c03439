import { describe, expect, it } from 'vitest';
import { RequestRejected } from '../../../functions/core/errors.ts';
import { queryTerms, termsOf } from '../../../functions/core/search-terms.ts';

describe('search terms', () => {
  it('keeps distinct words, lower case without accents or a plain plural, without stopwords or one-letter words', () => {
    expect(termsOf('What is a Roth IRA? Roth IRAs grow tax-free; Café accounts, 401k and x.')).toEqual([
      'roth',
      'ira',
      'grow',
      'tax',
      'free',
      'cafe',
      'account',
      '401k',
    ]);
    // "ss" is not a plural; short words keep their s.
    expect(termsOf('glass gas')).toEqual(['glass', 'gas']);
  });

  it('stops at the cap per message', () => {
    const words = Array.from({ length: 500 }, (_, i) => `word${i}`).join(' ');
    expect(termsOf(words)).toHaveLength(300);
  });

  it('turns a query into the same terms, and refuses an empty, too long, stopword-only or six-word query', () => {
    expect(queryTerms('Roth IRAs')).toEqual(['roth', 'ira']);
    for (const bad of ['', ' ', 'the and of', 'a'.repeat(101), 'one two three four five six']) {
      expect(() => queryTerms(bad)).toThrow(RequestRejected);
    }
  });
});
