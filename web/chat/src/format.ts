/** Small display helpers shared by the views. */

export function formatSize(bytes: number | undefined): string {
  if (bytes === undefined || !Number.isFinite(bytes)) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export function formatTime(ts: number): string {
  const d = new Date(ts);
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  return sameDay
    ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

/** A plain-text summary of an error for an alert region. */
export function errorText(e: unknown): string {
  if (e && typeof e === "object") {
    const m = e as { data?: { error?: string }; message?: string };
    if (m.data?.error) return m.data.error;
    if (m.message) return m.message;
  }
  return String(e);
}
