import { errorName } from '../core/background-writes.ts';
import type { TurnJournal } from '../core/ports.ts';
import type { TurnReport } from '../core/turn.ts';
import type { StreamRuntime } from './stream-runtime.ts';
import type { SavedBeforeDoneSink } from './wire-sink.ts';

/**
 * After the turn: end the body, then wait for every background write, log the outcome and publish
 * metrics. Returned to the handler, which awaits it before the invocation returns (Lambda freezes
 * the environment after that, so nothing may be left running).
 */
export async function finishTurn(
  runtime: StreamRuntime,
  turn: Promise<TurnReport>,
  sink: SavedBeforeDoneSink,
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
  // `done` only once the messages are saved (queued or written): a lost turn ends with an error instead.
  const background = await report.background;
  sink.settle(background.failedSaves === 0);
  // Frees the session before the client sees the end, so its next message is never refused as busy.
  await journal?.finish();
  endBody();
  const tokens = report.usage.input_tokens + report.usage.output_tokens;
  await runtime.limits.charge(report.userId, tokens).catch((error: unknown) =>
    runtime.logger.warn('tokens not charged', {
      error: errorName(error),
    }),
  );
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
