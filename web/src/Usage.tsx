import type { Usage } from './api.ts';
import { plural } from './plural.ts';

const number = new Intl.NumberFormat();

function Limit({ label, used, limit }: { label: string; used: number; limit: number }) {
  if (limit <= 0) {
    return (
      <li>
        {label}: {number.format(used)} <span className="muted">(no limit)</span>
      </li>
    );
  }
  return (
    <li>
      <span>
        {label}: {number.format(used)} of {number.format(limit)}
      </span>
      <meter
        min={0}
        max={limit}
        value={Math.min(used, limit)}
        low={limit * 0.7}
        high={limit * 0.9}
        optimum={0}
      >
        {Math.round((used / limit) * 100)}%
      </meter>
    </li>
  );
}

/** Today's use against the limits (GET /me/usage). */
export function UsageView({ usage }: { usage: Usage | undefined }) {
  if (!usage) return null;
  const { limits } = usage;
  return (
    <section className="usage" aria-label="Usage today">
      <h2>Today</h2>
      <p>
        {plural(usage.turns, 'message')} · {plural(usage.input_tokens + usage.output_tokens, 'token')}
      </p>
      {(usage.models ?? []).length > 1 ? (
        <ul className="usage-models" aria-label="Tokens per model">
          {(usage.models ?? []).map((m) => (
            <li key={m.model}>
              {m.model}: {plural(m.input_tokens + m.output_tokens, 'token')}
            </li>
          ))}
        </ul>
      ) : null}
      <ul>
        <Limit label="Messages this minute" {...limits.turns_per_minute} />
        <Limit label="Answers at once" {...limits.concurrent_streams} />
        <Limit label="Tokens today" {...limits.tokens_per_day} />
      </ul>
    </section>
  );
}
