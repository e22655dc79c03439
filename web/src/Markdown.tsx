import type { Element, Root } from 'hast';
import { toText } from 'hast-util-to-text';
import bash from 'highlight.js/lib/languages/bash';
import css from 'highlight.js/lib/languages/css';
import javascript from 'highlight.js/lib/languages/javascript';
import json from 'highlight.js/lib/languages/json';
import python from 'highlight.js/lib/languages/python';
import sql from 'highlight.js/lib/languages/sql';
import typescript from 'highlight.js/lib/languages/typescript';
import xml from 'highlight.js/lib/languages/xml';
import yaml from 'highlight.js/lib/languages/yaml';
import { createLowlight } from 'lowlight';
import { Lexer } from 'marked';
import { type ComponentProps, memo, useRef } from 'react';
import ReactMarkdown, { type Components } from 'react-markdown';
import rehypeSanitize, { defaultSchema } from 'rehype-sanitize';
import remarkGfm from 'remark-gfm';
import remend from 'remend';
import { visit } from 'unist-util-visit';
import { CopyButton } from './CopyButton.tsx';
import { type Citation, CitationContext, CitationMarker, rehypeCitations } from './citations.tsx';

/**
 * The languages answers use most; each one costs bundle size, so not highlight.js's whole set (which
 * rehype-highlight bundles whatever languages it is given: about 300 kB more).
 */
const lowlight = createLowlight({ bash, css, javascript, json, python, sql, typescript, xml, yaml });
lowlight.registerAlias({
  bash: ['sh', 'shell', 'zsh'],
  javascript: ['js', 'jsx'],
  typescript: ['ts', 'tsx'],
  xml: ['html'],
  yaml: ['yml'],
});

/** Highlights fenced code in a known language: highlight.js token spans (classes only: the CSP allows no inline style). */
function rehypeCodeHighlight() {
  return (tree: Root) => {
    visit(tree, 'element', (node: Element, _index, parent) => {
      if (node.tagName !== 'code' || (parent as Element | undefined)?.tagName !== 'pre') return;
      const classes = Array.isArray(node.properties.className) ? node.properties.className.map(String) : [];
      const language = classes.find((c) => c.startsWith('language-'))?.slice('language-'.length);
      if (!language || !lowlight.registered(language)) return;
      node.children = lowlight.highlight(language, toText(node, { whitespace: 'pre' }))
        .children as Element['children'];
      node.properties.className = [...classes, 'hljs'];
    });
  };
}

/** Code keeps its `language-*` class through the sanitizer, so the highlighter knows the language. */
const SCHEMA = {
  ...defaultSchema,
  attributes: {
    ...defaultSchema.attributes,
    code: [...(defaultSchema.attributes?.code ?? []), ['className', /^language-[\w-]+$/]],
  },
};

/**
 * The answer's Markdown never becomes HTML: raw HTML in it is dropped (react-markdown does not parse it),
 * unsafe link protocols are removed, and what remains is sanitized before highlighting adds its classes.
 */
const REMARK = [remarkGfm];
const REHYPE = [[rehypeSanitize, SCHEMA], rehypeCitations, rehypeCodeHighlight] as ComponentProps<
  typeof ReactMarkdown
>['rehypePlugins'];

function CodeBlock({ children, node: _node, ...rest }: ComponentProps<'pre'> & { node?: unknown }) {
  const pre = useRef<HTMLPreElement>(null);
  const code = (children as { props?: { className?: string } } | undefined)?.props?.className;
  const language = /language-([\w-]+)/.exec(code ?? '')?.[1];
  return (
    <div className="code-block">
      <div className="code-head">
        <span>{language ?? 'code'}</span>
        <CopyButton label="code" text={() => pre.current?.textContent ?? ''} />
      </div>
      {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a wide code block scrolls sideways by keyboard too. */}
      <pre ref={pre} tabIndex={0} {...rest}>
        {children}
      </pre>
    </div>
  );
}

function Link({ children, href, node: _node }: ComponentProps<'a'> & { node?: unknown }) {
  return (
    <a href={href} target="_blank" rel="noreferrer noopener">
      {children}
    </a>
  );
}

function Table({ children, node: _node }: ComponentProps<'table'> & { node?: unknown }) {
  return (
    // biome-ignore lint/a11y/noNoninteractiveTabindex: a wide table scrolls sideways by keyboard too.
    <div className="table-wrap" tabIndex={0}>
      <table>{children}</table>
    </div>
  );
}

const COMPONENTS: Components = { pre: CodeBlock, a: Link, table: Table, sup: CitationMarker };

/** One top-level block (a paragraph, a list, a table, a code block): re-rendered only when its text changes. */
const Block = memo(function Block({ text }: { text: string }) {
  return (
    <ReactMarkdown remarkPlugins={REMARK} rehypePlugins={REHYPE} components={COMPONENTS}>
      {text}
    </ReactMarkdown>
  );
});

/** Splits Markdown into its top-level blocks, as written (marked's lexer: fast, no rendering). */
function splitBlocks(markdown: string): string[] {
  return Lexer.lex(markdown, { gfm: true })
    .map((token) => token.raw)
    .filter((raw) => raw.trim() !== '');
}

/**
 * An answer as Markdown, while it streams: the text is split into blocks, and only the block being
 * written re-renders on a new token (the others are memoized by their text). The unfinished block is
 * closed first (an open `**`, backtick or fence), so it never flashes raw syntax.
 */
export default function Markdown({
  text,
  streaming,
  citations = [],
}: {
  text: string;
  streaming: boolean;
  /** The answer's sources, which its `[n]` markers link to. */
  citations?: Citation[];
}) {
  const blocks = splitBlocks(text);
  return (
    <CitationContext value={citations}>
      <div className="text markdown">
        {blocks.map((block, index) => (
          // Blocks only grow at the end while streaming, so the index is a stable key.
          // biome-ignore lint/suspicious/noArrayIndexKey: see above.
          <Block key={index} text={streaming && index === blocks.length - 1 ? remend(block) : block} />
        ))}
      </div>
    </CitationContext>
  );
}
