const rules = new Intl.PluralRules('en');
const number = new Intl.NumberFormat('en');

/** "1 message", "2 messages", "1,024 tokens": English plurals (the page is in English). */
export function plural(count: number, one: string, other = `${one}s`): string {
  return `${number.format(count)} ${rules.select(count) === 'one' ? one : other}`;
}
