import { useState } from 'react';
import type { OAuthClient } from './auth.ts';

/** Signed out: one button to the managed login (it has the password, MFA and reset pages). */
export function SignIn({ auth, problem }: { auth: OAuthClient; problem?: string | undefined }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(problem);
  return (
    <main className="sign-in">
      <section className="sign-in-card" aria-labelledby="sign-in-title">
        <h1 id="sign-in-title">Streaming chat</h1>
        <p>Sign in to see your conversations.</p>
        {error ? <p role="alert">{error}</p> : null}
        <button
          type="button"
          className="send"
          disabled={busy}
          onClick={() => {
            setBusy(true);
            setError(undefined);
            auth.signIn().catch((failure: unknown) => {
              setBusy(false);
              setError(failure instanceof Error ? failure.message : String(failure));
            });
          }}
        >
          {busy ? 'Opening sign-in…' : 'Sign in'}
        </button>
      </section>
    </main>
  );
}
