import type { ChatMessage, Passage, UserProfile } from './messages.ts';
import type { ModelRequest } from './ports.ts';

/** Bedrock's stop reason when a guardrail replaced the answer. */
const GUARDRAIL_INTERVENED = 'guardrail_intervened';

const BASE_INSTRUCTIONS =
  'You are a helpful personal-finance education assistant. Answer clearly and briefly. ' +
  'When sources are given, ground the answer in them and say when they do not cover the question. ' +
  'You give education, not individual financial advice.';

export function buildSystemPrompt(profile: UserProfile | undefined, passages: Passage[]): string {
  const parts = [BASE_INSTRUCTIONS];
  if (profile?.name) parts.push(`The user's name is ${profile.name}.`);
  const preferences = Object.entries(profile?.preferences ?? {});
  if (preferences.length > 0) {
    parts.push(`User preferences: ${preferences.map(([k, v]) => `${k}: ${v}`).join('; ')}.`);
  }
  if (passages.length > 0) {
    parts.push(
      'Sources:',
      ...passages.map((p, i) => `<source id="${i + 1}" title="${p.title}">\n${p.text}\n</source>`),
    );
  }
  return parts.join('\n\n');
}

/**
 * Makes stored history valid for the Converse API before the new user message is appended: it must
 * start with a user turn and roles must alternate, so leading assistant turns are dropped and runs
 * of one role (a turn whose answer failed) are merged.
 */
export function toConverseMessages(history: ChatMessage[], message: string): ModelRequest['messages'] {
  const turns: ModelRequest['messages'] = [];
  // A regenerated answer replaces the earlier one: only the latest is part of the conversation.
  const replaced = new Set(history.flatMap((m) => (m.replaces ? [m.replaces] : [])));
  const said = history.filter((m) => !replaced.has(m.messageId));
  for (const entry of [...said, { role: 'user' as const, content: message }]) {
    if (entry.content.trim() === '') continue;
    // What a guardrail blocked is never fed back to the model as if it had been said.
    if ('stopReason' in entry && entry.stopReason === GUARDRAIL_INTERVENED) continue;
    const last = turns.at(-1);
    if (!last && entry.role !== 'user') continue;
    if (last && last.role === entry.role) last.content = `${last.content}\n\n${entry.content}`;
    else turns.push({ role: entry.role, content: entry.content });
  }
  return turns;
}
