/**
 * The one store conformance suite: every backend's test file calls runStoreConformance, so SQLite and
 * PostgreSQL are held to the same behaviour, edge cases included.
 */
import { describe } from "node:test";
import { accountTests } from "./conformance/accounts.ts";
import { crashTests } from "./conformance/crash.ts";
import { batchTests, eventTests } from "./conformance/events.ts";
import type { MakeStore } from "./conformance/helpers.ts";
import { integrityTests } from "./conformance/integrity.ts";
import { keyTests } from "./conformance/keys.ts";
import { manyUserTests } from "./conformance/many-users.ts";
import { miscTests } from "./conformance/misc.ts";
import { timelineTests } from "./conformance/timeline.ts";

export type { MakeStore, StoreHarness } from "./conformance/helpers.ts";

export function runStoreConformance(name: string, makeStore: MakeStore): void {
  describe(`store conformance: ${name}`, () => {
    accountTests(makeStore);
    eventTests(makeStore);
    batchTests(makeStore);
    timelineTests(makeStore);
    miscTests(makeStore);
    integrityTests(makeStore);
    keyTests(makeStore);
    manyUserTests(makeStore);
    crashTests(makeStore);
  });
}
