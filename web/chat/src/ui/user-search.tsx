/**
 * A user field with directory search (spec: /user_directory/search): what is typed is searched after a pause,
 * matching people are listed below, choosing one fills the field with their user ID. A full user ID can
 * always be typed directly.
 */
import type { MatrixClient } from "matrix-js-sdk";
import { useEffect, useRef, useState } from "preact/hooks";
import { errorText } from "../format.ts";
import { useDebounced } from "../hooks.ts";

interface Found {
  user_id: string;
  display_name?: string;
}

export function UserSearch(props: {
  client: MatrixClient;
  id: string;
  label: string;
  value: string;
  onInput: (value: string) => void;
  /** Take focus when shown (a form opened by a button). */
  focusOnMount?: boolean;
}) {
  const { client, value } = props;
  const term = useDebounced(value.trim(), 300);
  const [found, setFound] = useState<Found[]>([]);
  const [error, setError] = useState("");
  const field = useRef<HTMLInputElement>(null);
  useEffect(() => {
    if (props.focusOnMount) field.current?.focus();
  }, []);
  useEffect(() => {
    // A complete user ID needs no search; nothing typed clears the list.
    if (!term || /^@[^:]+:.+/.test(term)) {
      setFound([]);
      return;
    }
    let stale = false;
    client.searchUserDirectory({ term, limit: 8 }).then(
      (r) => {
        if (stale) return;
        setError("");
        setFound(r.results.filter((u) => u.user_id !== client.getUserId()));
      },
      (e) => !stale && setError(errorText(e)),
    );
    return () => {
      stale = true;
    };
  }, [term]);
  const listId = `${props.id}-matches`;
  return (
    <div class="user-search">
      <label for={props.id}>{props.label}</label>
      <input
        id={props.id}
        name={props.id}
        value={value}
        ref={field}
        autocomplete="off"
        placeholder="Name or @user:server"
        aria-describedby={listId}
        onInput={(e) => props.onInput(e.currentTarget.value)}
      />
      <ul id={listId} class="user-matches" aria-label="Matching users" aria-live="polite">
        {found.map((u) => (
          <li key={u.user_id}>
            <button
              type="button"
              class="quiet"
              onClick={() => {
                setFound([]);
                props.onInput(u.user_id);
              }}
            >
              {u.display_name ? `${u.display_name} (${u.user_id})` : u.user_id}
            </button>
          </li>
        ))}
      </ul>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </div>
  );
}
