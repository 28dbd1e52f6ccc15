/**
 * The store conformance suite, one part per area interface (types.ts, keys-types.ts): every backend's test file
 * calls runStoreConformance, so SQLite and PostgreSQL are held to the same behaviour, edge cases included.
 */
import { describe } from "node:test";
import { accountDataTests } from "./conformance/account-data.ts";
import { accountTests } from "./conformance/accounts.ts";
import { authTokenTests } from "./conformance/auth-tokens.ts";
import { crashTests } from "./conformance/crash.ts";
import { dagTests } from "./conformance/dag.ts";
import { destinationTests } from "./conformance/destinations.ts";
import { deviceListTests } from "./conformance/device-lists.ts";
import { ephemeralTests } from "./conformance/ephemeral.ts";
import { batchTests, eventTests } from "./conformance/events.ts";
import type { MakeStore } from "./conformance/helpers.ts";
import { integrityTests } from "./conformance/integrity.ts";
import { keyBackupTests } from "./conformance/key-backup.ts";
import { keyTests } from "./conformance/keys.ts";
import { mediaTests, pendingMediaTests, urlPreviewTests } from "./conformance/media.ts";
import { moderationTests } from "./conformance/moderation.ts";
import { pusherTests } from "./conformance/pushers.ts";
import { relationTests } from "./conformance/relations.ts";
import { roomTests } from "./conformance/rooms.ts";
import { searchTests } from "./conformance/search.ts";
import { serverKeyTests } from "./conformance/server-keys.ts";
import { storeTests } from "./conformance/store.ts";
import { timelineTests } from "./conformance/timeline.ts";

export type { MakeStore, StoreHarness } from "./conformance/helpers.ts";

export function runStoreConformance(name: string, makeStore: MakeStore): void {
  describe(`store conformance: ${name}`, () => {
    describe("AccountStore", () => accountTests(makeStore));
    describe("AuthTokenStore", () => authTokenTests(makeStore));
    describe("RoomStore", () => roomTests(makeStore));
    describe("EventStore", () => {
      eventTests(makeStore);
      batchTests(makeStore);
      timelineTests(makeStore);
    });
    describe("DagStore", () => dagTests(makeStore));
    describe("RelationStore", () => relationTests(makeStore));
    describe("AccountDataStore", () => accountDataTests(makeStore));
    describe("EphemeralStore", () => ephemeralTests(makeStore));
    describe("MediaStore", () => {
      mediaTests(makeStore);
      pendingMediaTests(makeStore);
      urlPreviewTests(makeStore);
    });
    describe("ReportStore and admin listings", () => moderationTests(makeStore));
    describe("KeyStore", () => keyTests(makeStore));
    describe("KeyBackupStore", () => keyBackupTests(makeStore));
    describe("PusherStore", () => pusherTests(makeStore));
    describe("SearchStore", () => searchTests(makeStore));
    describe("ServerKeyStore", () => serverKeyTests(makeStore));
    describe("DestinationStore", () => destinationTests(makeStore));
    describe("DeviceListStore", () => deviceListTests(makeStore));
    // Across areas: getMaxStream, durability, references between areas' rows, kill -9.
    describe("Store", () => {
      storeTests(makeStore);
      integrityTests(makeStore);
      crashTests(makeStore);
    });
  });
}
