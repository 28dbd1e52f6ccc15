import assert from "node:assert/strict";
import { test } from "node:test";
import { redactUrl, scrubText } from "./redact.ts";

test("redactUrl: userinfo, RTMP stream keys, SRT stream ids and passphrases, secret query values", () => {
  assert.equal(redactUrl("rtmp://user:pass@host:1935/live"), "rtmp://***@host:1935/live");
  assert.equal(redactUrl("rtmp://host/live/sk_abc123"), "rtmp://host/live/***");
  assert.equal(
    redactUrl("rtmps://a.rtmp.youtube.com:443/live2/xxxx-yyyy-zzzz"),
    "rtmps://a.rtmp.youtube.com:443/live2/***",
  );
  assert.equal(redactUrl("rtmp://u:p@host/app/inst/key?x=1"), "rtmp://***@host/app/inst/***?x=1");
  assert.equal(
    redactUrl("srt://host:9000?mode=caller&streamid=#!::r=live/x,m=publish&passphrase=s3cretpass1"),
    "srt://host:9000?mode=caller&streamid=***&passphrase=***",
  );
  assert.equal(
    redactUrl("http://h/live/x/index.m3u8?key=k1&token=t2&sig=s3&exp=9"),
    "http://h/live/x/index.m3u8?key=***&token=***&sig=***&exp=9",
  );
  assert.equal(
    redactUrl("https://h/_matrix/client/v3/sync?access_token=syt_x"),
    "https://h/_matrix/client/v3/sync?access_token=***",
  );
  // Nothing secret: unchanged.
  assert.equal(redactUrl("http://127.0.0.1:8008/health"), "http://127.0.0.1:8008/health");
  assert.equal(redactUrl("rtmp://host/live"), "rtmp://host/live");
});

test("scrubText: headers, bearer tokens, request targets, URLs inside JSON log lines", () => {
  assert.equal(scrubText("Authorization: Bearer abc.def"), "Authorization: ***");
  assert.equal(scrubText('{"authorization":"Basic dXNlcjpwdw=="}'), '{"authorization":"***"}');
  assert.equal(scrubText("sent with bearer syt_abc_123 ok"), "sent with bearer *** ok");
  assert.equal(
    scrubText("GET /_matrix/client/v3/sync?since=s1&access_token=syt_zz 200"),
    "GET /_matrix/client/v3/sync?since=s1&access_token=*** 200",
  );
  assert.equal(scrubText('{"access_token":"syt_q\\"x","user":"@a:b"}'), '{"access_token":"***","user":"@a:b"}');
  const line = JSON.stringify({
    msg: "restream started",
    to: "rtmp://bob:hunter2@relay.example:1935/live/stream-key-42",
    source: "srt://10.0.0.1:9000?streamid=publish:cam1&passphrase=abcdefghij",
  });
  const out = scrubText(line);
  for (const secret of ["bob", "hunter2", "stream-key-42", "publish:cam1", "abcdefghij"]) {
    assert.ok(!out.includes(secret), `${secret} left in ${out}`);
  }
  assert.ok(out.includes("rtmp://***@relay.example:1935/live/***"), out);
  assert.deepEqual(Object.keys(JSON.parse(out)), ["msg", "to", "source"]);
  assert.equal(scrubText("plain line, nothing to hide: 42 events"), "plain line, nothing to hide: 42 events");
});
