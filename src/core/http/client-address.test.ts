import assert from "node:assert/strict";
import { test } from "node:test";
import { parseCidr, TrustedProxies } from "./client-address.ts";

test("without trusted proxies X-Forwarded-For is ignored: the peer address is the client", () => {
  const t = new TrustedProxies([]);
  assert.equal(t.resolve("203.0.113.9", "1.2.3.4"), "203.0.113.9");
  assert.equal(t.resolve("::ffff:127.0.0.1", "1.2.3.4"), "127.0.0.1");
});

test("a direct client cannot spoof its address; behind a trusted proxy the client is the proxy's last hop", () => {
  const t = new TrustedProxies(["10.0.0.0/8", "fd00::/8", "127.0.0.1"]);
  // Not from a proxy: the header is the client's own words.
  assert.equal(t.resolve("203.0.113.9", "1.2.3.4"), "203.0.113.9");
  // From the proxy: the address it appended.
  assert.equal(t.resolve("10.1.2.3", "198.51.100.7"), "198.51.100.7");
  assert.equal(t.resolve("::ffff:127.0.0.1", "198.51.100.7"), "198.51.100.7");
  // A client behind the proxy that sent its own X-Forwarded-For: what it wrote is left of the proxy's hop.
  assert.equal(t.resolve("10.1.2.3", "6.6.6.6, 198.51.100.7"), "198.51.100.7");
  // Two trusted proxies in a row, several header lines.
  assert.equal(t.resolve("10.1.2.3", ["6.6.6.6, 198.51.100.7", "fd00::1"]), "198.51.100.7");
  // Every hop trusted: the leftmost is as far as we can see.
  assert.equal(t.resolve("10.1.2.3", "10.9.9.9"), "10.9.9.9");
  // Garbage stops the walk at the last address vouched for.
  assert.equal(t.resolve("10.1.2.3", "1.1.1.1, not-an-ip"), "10.1.2.3");
  assert.equal(t.resolve("10.1.2.3", undefined), "10.1.2.3");
  assert.equal(t.resolve("10.1.2.3", ""), "10.1.2.3");
});

test("CIDR parsing refuses what is not an address or range", () => {
  assert.deepEqual(parseCidr("10.0.0.0/8"), { address: "10.0.0.0", prefix: 8, family: "ipv4" });
  assert.deepEqual(parseCidr("::1"), { address: "::1", prefix: null, family: "ipv6" });
  for (const bad of ["10.0.0.0/33", "fd00::/129", "10.0.0.0/8/1", "example.org", "10.0.0.0/x", ""])
    assert.equal(parseCidr(bad), null, bad);
  assert.throws(() => new TrustedProxies(["nope"]), /trustedProxies/);
});
