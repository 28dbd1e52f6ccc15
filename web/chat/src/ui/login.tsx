/** The sign-in form: homeserver URL (prefilled from the page config), user name, password. */
import { useState } from "preact/hooks";
import { errorText } from "../format.ts";
import { type PageConfig, passwordLogin, type StoredSession } from "../session.ts";

export function Login({ config, onLogin }: { config: PageConfig; onLogin: (s: StoredSession) => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");

  const submit = async (e: Event) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget as HTMLFormElement);
    setBusy(true);
    setError("");
    try {
      const url = String(f.get("homeserver")).trim().replace(/\/+$/, "");
      onLogin(await passwordLogin(url, String(f.get("username")).trim(), String(f.get("password"))));
    } catch (err) {
      setError(errorText(err));
      setBusy(false);
    }
  };

  return (
    <main class="login">
      <form class="card" onSubmit={submit} aria-labelledby="login-title">
        <h1 id="login-title">Sign in to chat</h1>
        <label for="homeserver">Homeserver</label>
        <input id="homeserver" name="homeserver" type="url" required value={config.homeserverUrl} />
        <label for="username">User name</label>
        <input
          id="username"
          name="username"
          autocomplete="username"
          required
          placeholder={`alice or @alice:${config.serverName ?? "localhost"}`}
        />
        <label for="password">Password</label>
        <input id="password" name="password" type="password" autocomplete="current-password" required />
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
