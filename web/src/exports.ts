import type { StoredMessage } from './api.ts';

/**
 * A conversation as a Markdown document: headed turns, the answer's Markdown as written, its sources, which
 * version of a message it is (the export holds the branch shown) and the person's rating.
 */
export function conversationMarkdown(title: string, messages: StoredMessage[]): string {
  const lines = [`# ${title}`, ''];
  for (const message of messages) {
    lines.push(`## ${message.role === 'user' ? 'You' : 'Assistant'} (${message.created_at})`, '');
    lines.push(message.text.trim(), '');
    if (message.stop_reason === 'stopped') lines.push('_Stopped before the end._', '');
    const version = message.versions ? message.versions.indexOf(message.id) + 1 : 0;
    if (message.versions && version > 0)
      lines.push(`_Version ${version} of ${message.versions.length}._`, '');
    if (message.feedback) {
      const rated = message.feedback.rating === 'up' ? 'Rated helpful' : 'Rated not helpful';
      lines.push(message.feedback.reason ? `${rated}: “${message.feedback.reason}”` : rated, '');
    }
    const sources = [...new Set((message.sources ?? []).map((s) => `${s.title} (${s.uri})`))];
    if (sources.length) lines.push('Sources:', ...sources.map((s) => `- ${s}`), '');
  }
  return `${lines.join('\n').trimEnd()}\n`;
}

/** A conversation as JSON: what the API stores, with the title and when it was exported. */
export function conversationJson(
  session: { id: string; title: string },
  messages: StoredMessage[],
  now = new Date(),
): string {
  return `${JSON.stringify({ ...session, exported_at: now.toISOString(), messages }, null, 2)}\n`;
}

/** A file name from the title: letters, digits and dashes. */
export const fileNameOf = (title: string, extension: string) =>
  `${
    title
      .toLowerCase()
      .replace(/[^\p{L}\p{N}]+/gu, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 60) || 'conversation'
  }.${extension}`;

/** Saves text as a file (a Blob URL, which the page's CSP allows to download). */
export function download(name: string, type: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
