import type { Element, ElementContent, Root, Text } from 'hast';
import { type ComponentProps, createContext, type MouseEvent, useContext, useId, useState } from 'react';
import { visit } from 'unist-util-visit';
import type { ChatMessage } from './api.ts';

/** A passage the answer may cite as `[n]`: n is its place in the sources the turn sent (the prompt's ids). */
export interface Citation {
  n: number;
  title: string;
  url: string | undefined;
  excerpt: string | undefined;
}

const excerptOf = (part: { providerMetadata?: unknown }): string | undefined => {
  const excerpt = (part.providerMetadata as { knowledgeBase?: { excerpt?: unknown } } | undefined)
    ?.knowledgeBase?.excerpt;
  return typeof excerpt === 'string' ? excerpt : undefined;
};

/** Every source part in the order it came, numbered as the prompt numbered the passages. */
export function numberedSources(message: ChatMessage): Citation[] {
  const out: Citation[] = [];
  for (const part of message.parts) {
    if (part.type === 'source-url') {
      out.push({ n: out.length + 1, title: part.title ?? part.url, url: part.url, excerpt: excerptOf(part) });
    } else if (part.type === 'source-document') {
      out.push({ n: out.length + 1, title: part.title, url: undefined, excerpt: excerptOf(part) });
    }
  }
  return out;
}

/** The sources of the answer being rendered, for its inline markers (the Markdown blocks are memoized by text). */
export const CitationContext = createContext<Citation[]>([]);

const MARKER = /(\[\d{1,2}\])/;
/** Text in these is quoted as written: `[1]` in code or in a link's text is not a citation. */
const VERBATIM = new Set(['code', 'pre', 'a', 'kbd']);

/** Turns each `[n]` the model wrote into `<sup class="cite" data-n="n">`, which CitationMarker renders. */
export function rehypeCitations() {
  return (tree: Root) => {
    visit(tree, 'text', (node: Text, index, parent) => {
      if (index === undefined || !parent || VERBATIM.has((parent as Element).tagName)) return;
      const pieces = node.value.split(MARKER).filter(Boolean);
      if (pieces.length === 1 && !MARKER.test(node.value)) return;
      const replaced: ElementContent[] = pieces.map((piece) => {
        const n = /^\[(\d{1,2})\]$/.exec(piece)?.[1];
        return n
          ? {
              type: 'element',
              tagName: 'sup',
              properties: { className: ['cite'], dataN: n },
              children: [{ type: 'text', value: piece }],
            }
          : { type: 'text', value: piece };
      });
      parent.children.splice(index, 1, ...replaced);
      return index + replaced.length;
    });
  };
}

/** On a touch screen (no hover) the first tap shows the excerpt; the next one opens the source. */
const noHover = () => window.matchMedia('(hover: none)').matches;

/**
 * An inline citation: a superscript link to the source (a button when the source has no address), with the
 * source's title and excerpt shown on hover, on keyboard focus, or on a first tap.
 */
export function CitationMarker({
  children,
  node: _node,
  ...props
}: ComponentProps<'sup'> & { node?: unknown }) {
  const citations = useContext(CitationContext);
  const tipId = useId();
  const [open, setOpen] = useState(false);
  const n = Number((props as Record<string, unknown>)['data-n']);
  const citation = props.className === 'cite' ? citations.find((c) => c.n === n) : undefined;
  if (!citation) return <sup {...props}>{children}</sup>;
  const label = `Source ${n}: ${citation.title}`;
  const reveal = (event: MouseEvent) => {
    if (open || !noHover()) return;
    event.preventDefault();
    setOpen(true);
  };
  return (
    <sup className={`cite${open ? ' open' : ''}`} onMouseLeave={() => setOpen(false)}>
      {citation.url ? (
        <a
          className="cite-ref"
          href={citation.url}
          target="_blank"
          rel="noreferrer noopener"
          aria-label={label}
          aria-describedby={tipId}
          onClick={reveal}
          onBlur={() => setOpen(false)}
        >
          {n}
        </a>
      ) : (
        <button
          type="button"
          className="cite-ref"
          aria-label={label}
          aria-describedby={tipId}
          aria-expanded={open}
          onClick={() => setOpen((shown) => !shown)}
          onBlur={() => setOpen(false)}
        >
          {n}
        </button>
      )}
      <span role="tooltip" id={tipId} className="cite-tip">
        <span className="cite-title">{citation.title}</span>
        {citation.excerpt ? <span className="cite-excerpt">{citation.excerpt}</span> : null}
      </span>
    </sup>
  );
}
