import { v7 as uuidv7 } from 'uuid';
import type { RequestSpec } from './load.ts';
import { streamTurn } from './load.ts';

export const QUESTIONS = [
  'What is a Roth IRA?',
  'How big should an emergency fund be?',
  'How does an employer 401(k) match work?',
  'What helps my credit score most?',
  'Should I pay the highest interest debt first?',
];

export interface Scenario {
  id: string;
  title: string;
  useRag: boolean;
  session: 'warm' | 'cold';
  question: 'fixed' | 'unique';
}

export const SCENARIOS: Scenario[] = [
  { id: 'warm-no-rag', title: 'warm cache, no RAG', useRag: false, session: 'warm', question: 'fixed' },
  { id: 'cold-no-rag', title: 'cold cache, no RAG', useRag: false, session: 'cold', question: 'fixed' },
  { id: 'rag-cold', title: 'RAG, cold RAG cache', useRag: true, session: 'warm', question: 'unique' },
  { id: 'rag-hit', title: 'RAG, RAG cache hit', useRag: true, session: 'warm', question: 'fixed' },
];

type Mint = (subject: string) => Promise<string>;

/** One session per worker, each of its own user, with profile and history cached by a first turn. */
export async function warmSessions(mint: Mint, url: string, workers: number, label: string) {
  return Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      // A token's subject is [A-Za-z0-9._@-]{1,128}: scenario labels carry spaces and commas.
      const token = await mint(`bench-${label.replace(/[^A-Za-z0-9._@-]+/g, '-')}-${w}-${uuidv7()}`);
      const first = await streamTurn(url, {
        token,
        body: { message: QUESTIONS[0] as string, use_rag: false },
      });
      if (first.status !== 200 || !first.sessionId) {
        throw new Error(`warm-up turn failed: ${first.status} ${first.last ?? ''}`);
      }
      return { token, sessionId: first.sessionId };
    }),
  );
}

/** The requests of one scenario for one design: warm sessions per worker, or a new user and session each. */
export async function requestsFor(
  mint: Mint,
  url: string,
  scenario: Scenario,
  workers: number,
  label: string,
): Promise<(index: number, worker: number) => Promise<RequestSpec>> {
  const sessions = scenario.session === 'warm' ? await warmSessions(mint, url, workers, label) : [];
  const nonce = uuidv7().slice(-8);
  const fixed = QUESTIONS[1] as string;
  if (scenario.useRag && scenario.question === 'fixed' && sessions[0]) {
    await streamTurn(url, { token: sessions[0].token, body: { message: fixed, use_rag: true } });
  }
  return async (index, worker) => {
    const message =
      scenario.question === 'unique' ? `${QUESTIONS[index % QUESTIONS.length]} case ${nonce}${index}` : fixed;
    if (scenario.session === 'cold') {
      return {
        token: await mint(`bench-cold-${uuidv7()}`),
        body: { message, session_id: uuidv7(), use_rag: scenario.useRag },
      };
    }
    const session = sessions[worker] ?? sessions[0];
    return {
      token: session?.token ?? '',
      body: { message, session_id: session?.sessionId, use_rag: scenario.useRag },
    };
  };
}
