/** A dependency that did not answer in time; the turn goes on without it. */
class DeadlineExceeded extends Error {
  override name = 'DeadlineExceeded';
  constructor(label: string, ms: number) {
    super(`${label} took longer than ${ms} ms`);
  }
}

export interface Deadline {
  /** Aborts when the deadline passes, with a DeadlineExceeded reason; hand it to the call it bounds. */
  readonly signal: AbortSignal;
  readonly expired: boolean;
  clear(): void;
}

export function startDeadline(ms: number, label: string): Deadline {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DeadlineExceeded(label, ms)), ms);
  return {
    signal: controller.signal,
    get expired() {
      return controller.signal.aborted;
    },
    clear: () => clearTimeout(timer),
  };
}

/**
 * Runs `work` with a signal that aborts at the deadline, and stops waiting for it then even if the
 * work ignores its signal: a slow dependency turns into a fallback, never into a slow answer.
 */
export async function withDeadline<T>(
  ms: number,
  label: string,
  work: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const deadline = startDeadline(ms, label);
  const expired = new Promise<never>((_, reject) => {
    deadline.signal.addEventListener('abort', () => reject(deadline.signal.reason), { once: true });
  });
  try {
    return await Promise.race([work(deadline.signal), expired]);
  } finally {
    deadline.clear();
  }
}
