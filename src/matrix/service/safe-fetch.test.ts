import assert from "node:assert/strict";
import { test } from "node:test";
import { AddressPolicy, checkUrl } from "./safe-fetch.ts";

test("private, loopback, link-local, CGNAT, multicast and reserved addresses are denied, v4 and v6", () => {
  const p = new AddressPolicy([], []);
  for (const a of [
    "127.0.0.1",
    "127.9.9.9",
    "10.0.0.1",
    "172.31.255.255",
    "192.168.0.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "224.0.0.251",
    "255.255.255.255",
    "::1",
    "::",
    "fe80::1",
    "fd12:3456::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:7f00:1",
    "::FFFF:10.0.0.1",
    "64:ff9b::a00:1",
    "not an address",
  ])
    assert.equal(p.permits(a), false, a);
  for (const a of ["93.184.216.34", "8.8.8.8", "172.32.0.1", "2606:4700::1111", "::ffff:8.8.8.8"])
    assert.equal(p.permits(a), true, a);
});

test("the allowlist overrides the denied ranges; the extra blacklist adds to them", () => {
  const p = new AddressPolicy(["127.0.0.1", "fd00::/8"], ["8.8.8.0/24"]);
  assert.equal(p.permits("127.0.0.1"), true);
  assert.equal(p.permits("127.0.0.2"), false);
  assert.equal(p.permits("fd00::5"), true);
  assert.equal(p.permits("8.8.8.8"), false);
  assert.equal(p.permits("8.8.4.4"), true);
  assert.throws(() => new AddressPolicy(["nonsense/8"], []), /not an IP address/);
});

test("only http(s) URLs without credentials", () => {
  assert.equal(checkUrl("https://example.org/a?b").hostname, "example.org");
  for (const bad of [
    "ftp://example.org/",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "http://u:p@example.org/",
    "nope",
  ])
    assert.throws(() => checkUrl(bad), /url/i, bad);
});
