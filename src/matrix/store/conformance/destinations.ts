/** Conformance: the DestinationStore — federation retry state per remote server, upserted by name, listed by name. */
import assert from "node:assert/strict";
import { type MakeStore, storeTest } from "./helpers.ts";

export function destinationTests(make: MakeStore): void {
  storeTest(make, "destinations: put, replace, read one, list by name; unknown is null", async (s) => {
    assert.equal(await s.destinations.getDestination("a.test"), null);
    assert.deepEqual(await s.destinations.listDestinations(), []);
    const dead = {
      destination: "b.test",
      lastSuccessTs: null,
      failures: 3,
      retryIntervalMs: 40_000,
      nextRetryTs: 1_700_000_000_000 + 2 ** 40,
    };
    await s.destinations.putDestination(dead);
    await s.destinations.putDestination({
      destination: "a.test",
      lastSuccessTs: 1_700_000_000_000,
      failures: 0,
      retryIntervalMs: 0,
      nextRetryTs: 0,
    });
    assert.deepEqual(await s.destinations.getDestination("b.test"), dead);
    assert.deepEqual(
      (await s.destinations.listDestinations()).map((r) => r.destination),
      ["a.test", "b.test"],
    );
    // A success replaces the failure state, keeping nothing of it.
    const healed = { destination: "b.test", lastSuccessTs: 5, failures: 0, retryIntervalMs: 0, nextRetryTs: 0 };
    await s.destinations.putDestination(healed);
    assert.deepEqual(await s.destinations.getDestination("b.test"), healed);
  });
}
