import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import GithubSlugger from 'github-slugger';
import { Lexer, type Token, type Tokens } from 'marked';
import { afterAll, describe, expect, it } from 'vitest';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** README.md and docs/*.md: the pages a reader browses on GitHub. */
function documentsIn(root: string): string[] {
  const docs = join(root, 'docs');
  const pages = existsSync(docs) ? readdirSync(docs).filter((name) => name.endsWith('.md')) : [];
  return ['README.md', ...pages.map((name) => `docs/${name}`)].filter((file) => existsSync(join(root, file)));
}

function plainText(tokens: Token[] | undefined, raw: string): string {
  if (!tokens) return raw;
  return tokens
    .map((token) => {
      if ('tokens' in token && token.tokens) return plainText(token.tokens, '');
      if (token.type === 'html') return '';
      return 'text' in token ? token.text : token.raw;
    })
    .join('');
}

interface Page {
  links: string[];
  anchors: Set<string>;
  /** Prose and code together: a `../` path in either one points a reader outside the repository. */
  text: string;
}

const HTML_TARGETS = /\b(?:href|src)\s*=\s*"([^"]+)"/g;
const HTML_ANCHORS = /\b(?:id|name)\s*=\s*"([^"]+)"/g;

/** Links, image sources and heading anchors as GitHub renders them (code blocks and code spans hold none). */
function readPage(markdown: string): Page {
  const slugger = new GithubSlugger();
  const page: Page = { links: [], anchors: new Set(), text: markdown };
  const visit = (tokens: Token[]) => {
    for (const token of tokens) {
      if (token.type === 'heading') {
        const heading = token as Tokens.Heading;
        page.anchors.add(slugger.slug(plainText(heading.tokens, heading.text)));
      }
      if (token.type === 'link' || token.type === 'image') page.links.push((token as Tokens.Link).href);
      if (token.type === 'html' || token.type === 'tag') {
        for (const [, target] of token.raw.matchAll(HTML_TARGETS)) if (target) page.links.push(target);
        for (const [, anchor] of token.raw.matchAll(HTML_ANCHORS)) if (anchor) page.anchors.add(anchor);
      }
      if (token.type === 'table') {
        const table = token as Tokens.Table;
        visit(table.header.flatMap((cell) => cell.tokens));
        for (const row of table.rows) visit(row.flatMap((cell) => cell.tokens));
      }
      if (token.type === 'list') for (const item of (token as Tokens.List).items) visit(item.tokens);
      else if ('tokens' in token && token.tokens) visit(token.tokens);
    }
  };
  visit(new Lexer({ gfm: true }).lex(markdown));
  return page;
}

const EXTERNAL = /^(?:[a-z][a-z0-9+.-]*:|\/\/)/i;
const PARENT_PATHS = /(?:\.\.\/)+[^\s`'")\]#?]*/g;

/**
 * Every relative link that does not resolve, and every `../` path (linked or in prose and code) that leaves
 * the repository or names nothing in it, as "file: problem".
 */
function brokenLinks(root: string): string[] {
  const files = documentsIn(root);
  const pages = new Map(files.map((file) => [file, readPage(readFileSync(join(root, file), 'utf8'))]));
  const problems: string[] = [];
  const inside = (path: string) => {
    const rel = relative(root, path);
    return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
  };
  for (const [file, page] of pages) {
    const folder = dirname(join(root, file));
    for (const link of page.links) {
      if (EXTERNAL.test(link)) {
        if (link.startsWith('file:')) problems.push(`${file}: ${link} is a file on one machine`);
        continue;
      }
      const [pathPart = '', anchor] = link.split('#', 2);
      const path = decodeURIComponent(pathPart);
      const target =
        path === '' ? join(root, file) : path.startsWith('/') ? join(root, path) : resolve(folder, path);
      if (!inside(target)) {
        problems.push(`${file}: ${link} leaves the repository`);
        continue;
      }
      if (!existsSync(target)) {
        problems.push(`${file}: ${link} does not exist`);
        continue;
      }
      if (anchor === undefined) continue;
      const targetPage = pages.get(relative(root, target));
      if (!targetPage) problems.push(`${file}: ${link} has an anchor into a page that is not checked`);
      else if (!targetPage.anchors.has(decodeURIComponent(anchor)))
        problems.push(`${file}: ${link} names no heading of ${relative(root, target)}`);
    }
    for (const [match] of page.text.matchAll(PARENT_PATHS)) {
      const path = match.replace(/[.,;:]+$/, '');
      const target = resolve(folder, path);
      if (!inside(target)) problems.push(`${file}: ${path} leaves the repository`);
      else if (!existsSync(target)) problems.push(`${file}: ${path} does not exist`);
    }
  }
  return [...new Set(problems)];
}

describe('links in README.md and docs/', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'doc-links-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('every relative link and anchor resolves inside the repository', () => {
    expect(documentsIn(REPO).length).toBeGreaterThan(1);
    expect(brokenLinks(REPO)).toEqual([]);
  });

  it('reports a missing file, a missing anchor, and links and paths that leave the repository or name nothing in it', () => {
    mkdirSync(join(scratch, 'docs'));
    writeFileSync(join(scratch, 'notes.txt'), 'exists');
    writeFileSync(
      join(scratch, 'README.md'),
      [
        '# Guide',
        '## The chat page (`web/`)',
        'See [the page](#the-chat-page-web), [notes](notes.txt), [api](docs/api.md#errors-and-limits).',
        '| a | b |',
        '|---|---|',
        '| [gone](docs/missing.md) | [self](#no-such-heading) |',
        '<img src="docs/absent.png" alt="">',
        'The seed is [here](../shared/seed.md); also in `../shared/reviews/x.md`.',
        '[web](https://example.com/#anything) and [mail](mailto:a@example.com) are not checked.',
        '```',
        '[in a code block](nowhere.md)',
        '```',
      ].join('\n'),
    );
    writeFileSync(
      join(scratch, 'docs/api.md'),
      '# API\n## Errors\nBack to [the README](../README.md#guide). The seed is in ../shared/seed.md.\n',
    );
    expect(brokenLinks(scratch)).toEqual([
      'README.md: docs/api.md#errors-and-limits names no heading of docs/api.md',
      'README.md: docs/missing.md does not exist',
      'README.md: #no-such-heading names no heading of README.md',
      'README.md: docs/absent.png does not exist',
      'README.md: ../shared/seed.md leaves the repository',
      'README.md: ../shared/reviews/x.md leaves the repository',
      'docs/api.md: ../shared/seed.md does not exist',
    ]);
  });
});
