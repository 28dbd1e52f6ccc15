/** Conformance: the ServerKeyStore — remote servers' signing keys, upserted by (server, key id), read by key ids. */
import assert from "node:assert/strict";
import type { ServerKeyRow } from "../server-keys-types.ts";
import { type MakeStore, storeTest } from "./helpers.ts";

const row = (serverName: string, keyId: string, over: Partial<ServerKeyRow> = {}): ServerKeyRow => ({
  serverName,
  keyId,
  publicKey: "l8Hft5qXKn1vfHrg3p4+W8gELQVo8N13JkluMfmn2sQ",
  validUntilTs: 1_700_000_000_000 + 2 ** 40,
  expiredTs: null,
  fetchedTs: 1_700_000_000_000,
  responseJson: '{"server_name":"a.test"}',
  ...over,
});

export function serverKeyTests(make: MakeStore): void {
  storeTest(make, "server keys: put, replace, read by server and by key ids; other servers apart", async (s) => {
    assert.deepEqual(await s.serverKeys.getServerKeys("a.test"), []);
    await s.serverKeys.putServerKeys([
      row("a.test", "ed25519:k1"),
      row("a.test", "ed25519:k0", { expiredTs: 1_600_000_000_000 }),
      row("b.test", "ed25519:k1", { publicKey: "other" }),
    ]);
    const all = await s.serverKeys.getServerKeys("a.test");
    assert.deepEqual(
      all.map((r) => [r.keyId, r.expiredTs]),
      [
        ["ed25519:k0", 1_600_000_000_000],
        ["ed25519:k1", null],
      ],
    );
    assert.deepEqual(all[1], row("a.test", "ed25519:k1"));
    // A refetch replaces the row (new validity, the newer response).
    await s.serverKeys.putServerKeys([row("a.test", "ed25519:k1", { validUntilTs: 5, responseJson: "{}" })]);
    const [k1] = await s.serverKeys.getServerKeys("a.test", ["ed25519:k1", "ed25519:nope"]);
    assert.equal(k1.validUntilTs, 5);
    assert.equal(k1.responseJson, "{}");
    assert.equal((await s.serverKeys.getServerKeys("b.test"))[0].publicKey, "other");
    assert.deepEqual(await s.serverKeys.getServerKeys("a.test", []), []);
  });
}
