import { type FormEvent, useState } from 'react';
import type { CognitoAuth, Signer } from './auth.ts';

/** Username and password against the Cognito user pool, and the new password a first sign-in asks for. */
export function SignIn({ auth, onSignedIn }: { auth: CognitoAuth; onSignedIn: (signer: Signer) => void }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [challenge, setChallenge] = useState<{ username: string; session: string } | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const result = challenge
        ? await auth.setNewPassword(challenge.username, password, challenge.session)
        : await auth.signIn(username.trim(), password);
      if (result.kind === 'signed-in') onSignedIn(result.signer);
      else {
        setChallenge({ username: result.username, session: result.session });
        setPassword('');
      }
    } catch (failure) {
      setError(
        failure instanceof TypeError
          ? 'The sign-in service cannot be reached. Check the connection.'
          : failure instanceof Error
            ? failure.message
            : String(failure),
      );
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="sign-in">
      <form onSubmit={submit} aria-labelledby="sign-in-title">
        <h1 id="sign-in-title">{challenge ? 'Choose a new password' : 'Sign in'}</h1>
        {challenge ? null : (
          <label>
            Username or email
            <input
              autoComplete="username"
              value={username}
              required
              onChange={(event) => setUsername(event.target.value)}
            />
          </label>
        )}
        <label>
          {challenge ? 'New password' : 'Password'}
          <input
            type="password"
            autoComplete={challenge ? 'new-password' : 'current-password'}
            value={password}
            required
            onChange={(event) => setPassword(event.target.value)}
          />
        </label>
        {error ? <p role="alert">{error}</p> : null}
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : challenge ? 'Set password and sign in' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
