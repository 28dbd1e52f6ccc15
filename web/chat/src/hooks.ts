/** Re-render a component when the client emits any of some events (batched: one render per burst). */
import type { MatrixClient } from "matrix-js-sdk";
import { useEffect, useState } from "preact/hooks";

export function useClientEvents(client: MatrixClient, events: readonly string[]): number {
  const [tick, setTick] = useState(0);
  const key = events.join(",");
  useEffect(() => {
    let queued = false;
    const bump = () => {
      if (queued) return;
      queued = true;
      // A macrotask, not requestAnimationFrame: rAF stops in background tabs and the list would go stale.
      setTimeout(() => {
        queued = false;
        setTick((t) => t + 1);
      }, 0);
    };
    const names = key.split(",");
    for (const e of names) client.on(e as any, bump);
    return () => {
      for (const e of names) client.off(e as any, bump);
    };
  }, [client, key]);
  return tick;
}
