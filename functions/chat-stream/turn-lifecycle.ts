import { errorName } from '../core/background-writes.ts';
import type { EventSink, TurnJournal } from '../core/ports.ts';
import type { TurnReport } from '../core/turn.ts';
import type { StreamRuntime } from './stream-runtime.ts';

/**
 * After the turn: end the body, then wait for every background write, log the outcome and publish
 * metrics. Returned to the handler, which awaits it before the invocation returns (Lambda freezes
 * the environment after that, so nothing may be left running).
 */
export async function finishTurn(
  runtime: StreamRuntime,
  turn: Promise<TurnReport>,
  sink: EventSink,
  journal: TurnJournal | undefined,
  endBody: () => void,
): Promise<void> {
  let report: TurnReport;
  try {
    report = await turn;
  } catch (error) {
    runtime.logger.error('turn crashed', { error: errorName(error) });
    sink.send({ type: 'error', code: 'internal', message: 'Something went wrong while answering.' });
    await journal?.finish();
    endBody();
    return;
  }
  // Frees the session before the client sees the end, so its next message is never refused as busy.
  await journal?.finish();
  endBody();
  const tokens = report.usage.input_tokens + report.usage.output_tokens;
  await runtime.limits.charge(report.userId, tokens).catch((error: unknown) =>
    runtime.logger.warn('tokens not charged', {
      error: errorName(error),
    }),
  );
  const background = await report.background;
  runtime.logger.info('turn finished', {
    outcome: report.outcome,
    errorCode: report.errorCode,
    timings: report.timings,
    cache: report.cache,
    usage: report.usage,
    retrievalFailed: report.retrievalFailed,
    ...background,
  });
  runtime.metrics.publishTurn(report, background);
}
