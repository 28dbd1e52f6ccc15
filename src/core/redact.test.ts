import assert from "node:assert/strict";
import { test } from "node:test";
import { MASK, redactUrl, scrubText } from "./redact.ts";

test("redactUrl: userinfo, RTMP stream keys, SRT stream ids and passphrases, secret query values", () => {
  const cases: Array<[string, string]> = [
    ["rtmp://user:pass@host:1935/live", "rtmp://***@host:1935/live"],
    ["rtmp://host/live/sk_abc123", "rtmp://host/live/***"],
    ["rtmps://a.rtmp.youtube.com:443/live2/xxxx-yyyy-zzzz", "rtmps://a.rtmp.youtube.com:443/live2/***"],
    ["rtmp://a.rtmp.youtube.com/live2/abcd-efgh-ijkl", "rtmp://a.rtmp.youtube.com/live2/***"],
    ["rtmps://live.example:443/app/sk_live_123?x=1", "rtmps://live.example:443/app/***?x=1"],
    // Everything after the RTMP application is the key (was `/app/inst/***` in core's first version).
    ["rtmp://u:p@host/app/inst/key?x=1", "rtmp://***@host/app/***?x=1"],
    ["rtmpt://host/app/a/b/", "rtmpt://host/app/***"],
    ["rtmp://host:1935/live/name?key=K123", "rtmp://host:1935/live/***?key=***"],
    ["rtmp://[::1]:1935/live/k", "rtmp://[::1]:1935/live/***"],
    [
      "srt://host:9000?mode=caller&streamid=#!::r=live/x,m=publish&passphrase=s3cretpass1",
      "srt://host:9000?mode=caller&streamid=***&passphrase=***",
    ],
    [
      "srt://h:9000?streamid=#!::r=live/x,m=publish&passphrase=longsecret1&latency=200",
      "srt://h:9000?streamid=***&passphrase=***&latency=200",
    ],
    [
      "http://h/live/x/index.m3u8?key=k1&token=t2&sig=s3&exp=9",
      "http://h/live/x/index.m3u8?key=***&token=***&sig=***&exp=9",
    ],
    ["https://cdn.example/a.m3u8?token=t0k&sig=s1g&exp=99", "https://cdn.example/a.m3u8?token=***&sig=***&exp=99"],
    ["https://cdn.example/a.m3u8?Key=v", "https://cdn.example/a.m3u8?Key=***"],
    [
      "https://cdn.example/a.m3u8?%6Bey=v&passwd=p&pass=q&auth=r",
      "https://cdn.example/a.m3u8?%6Bey=***&passwd=***&pass=***&auth=***",
    ],
    // Pairs the '&' split does not see: after a fragment mark, after ';'.
    ["https://h/a?x=1#token=abc", "https://h/a?x=1#token=***"],
    ["https://h/a?x=1;key=abc", "https://h/a?x=1;key=***"],
    ["https://h/_matrix/client/v3/sync?access_token=syt_x", "https://h/_matrix/client/v3/sync?access_token=***"],
    ["rtsp://admin:hunter2@cam.local:554/Streaming/101", "rtsp://***@cam.local:554/Streaming/101"],
    ["rtsp://user@cam/x", "rtsp://***@cam/x"],
    // An unencoded '@' or '/' in the password still ends at the last '@' before the query.
    ["rtsp://u:p@ss/w@cam/x", "rtsp://***@cam/x"],
    ["rtsp://admin:12/34@cam/x", "rtsp://***@cam/x"],
    ["rtsp://admin:12/34@10.0.0.5:554/x", "rtsp://***@10.0.0.5:554/x"],
    // A Matrix user ID in the path is not user info: the host stays.
    [
      "http://127.0.0.1:8008/_matrix/client/v3/profile/@alice:localhost",
      "http://127.0.0.1:8008/_matrix/client/v3/profile/@alice:localhost",
    ],
    [
      "https://hs/_matrix/client/v3/rooms/!r:hs/state/m.room.member/@bob:hs:8448",
      "https://hs/_matrix/client/v3/rooms/!r:hs/state/m.room.member/@bob:hs:8448",
    ],
    ["https://u:p@hs/_matrix/client/v3/profile/@bob:hs", "https://***@hs/_matrix/client/v3/profile/@bob:hs"],
    ["http://h/%ff?key=%zz", "http://h/%ff?key=***"],
    // Not a URL: only secret `name=value` pairs go (a request target without a scheme).
    ["/_matrix/client/v3/sync?since=s1&access_token=syt_zz", "/_matrix/client/v3/sync?since=s1&access_token=***"],
    // Nothing secret: unchanged.
    ["http://127.0.0.1:8008/health", "http://127.0.0.1:8008/health"],
    ["rtmp://host/live", "rtmp://host/live"],
    ["rtmp://host/app", "rtmp://host/app"],
    ["rtmp://host/app/", "rtmp://host/app/"],
    ["/var/media/clip.mp4", "/var/media/clip.mp4"],
    ["file:///var/clip.mp4", "file:///var/clip.mp4"],
    ["", ""],
  ];
  for (const [raw, want] of cases) assert.equal(redactUrl(raw), want, raw);
  assert.equal(MASK, "***");
});

test("redactUrl never throws and is idempotent", () => {
  for (const s of ["rtmp://", "rtsp://@", "srt://?", "x://a@b@c/d?key=", "rtmp:////", "%%%", "a://b?=&=&key"]) {
    const once = redactUrl(s);
    assert.equal(redactUrl(once), once, s);
  }
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
  assert.equal(scrubText('{"passwd":"a","secret":"b"}'), '{"passwd":"***","secret":"***"}');
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

test("scrubText: JSON-escaped text stays valid JSON, a raw backslash does not end a secret", () => {
  const error = 'open "rtmp://h/live/KEY" failed\nsrt://h?passphrase=ab\\cd&x=1 key=p\\q';
  const out = scrubText(JSON.stringify({ error }));
  assert.equal(JSON.parse(out).error, 'open "rtmp://h/live/***" failed\nsrt://h?passphrase=***&x=1 key=***');
  assert.equal(scrubText("srt://h?passphrase=ab\\cd"), "srt://h?passphrase=***");
  assert.deepEqual(JSON.parse(scrubText(JSON.stringify({ h: 'Authorization: Basic a"b\\c', n: 1 }))), {
    h: "Authorization: ***",
    n: 1,
  });
});

test("scrubText redacts every URL in a message, keeps prose punctuation, and stray secret pairs", () => {
  assert.equal(
    scrubText("rtmp://x.example/live/SECRETKEY: Connection refused"),
    "rtmp://x.example/live/***: Connection refused",
  );
  assert.equal(
    scrubText("[rtsp @ 0x1] method DESCRIBE failed: 401 Unauthorized (rtsp://u:pw@10.0.0.2/s)"),
    "[rtsp @ 0x1] method DESCRIBE failed: 401 Unauthorized (rtsp://***@10.0.0.2/s)",
  );
  assert.equal(scrubText("bad streamid=publish:live/x passphrase=abc"), "bad streamid=*** passphrase=***");
  assert.equal(scrubText("login with pass=x auth=y passwd=z"), "login with pass=*** auth=*** passwd=***");
  assert.equal(scrubText("nothing secret here"), "nothing secret here");
});
