import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeEntities, metaCharset, pageMeta } from "./html-meta.ts";

test("og:* properties in any attribute order and quoting; the first of each wins", () => {
  const html = `<meta property="og:title" content="One"><meta content='Two' property='og:title'>
    <META PROPERTY=og:url CONTENT=https://x.example/><meta name="og:site_name" content="Site">`;
  assert.deepEqual(pageMeta(html), { "og:title": "One", "og:url": "https://x.example/", "og:site_name": "Site" });
});

test("<title> and description fill in; comments and scripts are not markup", () => {
  const html = `<title> A &amp; B\n title </title><!-- <meta property="og:title" content="no"> -->
    <script>document.write('<meta property="og:description" content="no">')</script>
    <meta name="description" content="Desc &#233;&#x2014;">`;
  assert.deepEqual(pageMeta(html), { "og:title": "A & B title", "og:description": "Desc é—" });
});

test("entities, charset, caps", () => {
  assert.equal(decodeEntities("&lt;&eacute;&unknown;&#0;&#x110000;"), "<é&unknown;&#0;&#x110000;");
  assert.equal(metaCharset('<meta charset="ISO-8859-1">'), "iso-8859-1");
  assert.equal(metaCharset("<p>"), null);
  const long = pageMeta(`<meta property="og:title" content="${"x".repeat(5000)}">`);
  assert.equal(long["og:title"].length, 1000);
  const many = pageMeta(Array.from({ length: 80 }, (_, i) => `<meta property="og:p${i}" content="v">`).join(""));
  assert.equal(Object.keys(many).length, 50);
});
