import assert from "node:assert/strict";
import { test } from "node:test";
import { redactText, redactUrl } from "./redact.ts";

test("redactUrl hides user info, RTMP stream keys and secret query values", () => {
  const cases: Array<[string, string]> = [
    ["rtmp://a.rtmp.youtube.com/live2/abcd-efgh-ijkl", "rtmp://a.rtmp.youtube.com/live2/***"],
    ["rtmps://live.example:443/app/sk_live_123?x=1", "rtmps://live.example:443/app/***?x=1"],
    ["rtmp://host/app", "rtmp://host/app"],
    ["rtmp://host/app/", "rtmp://host/app/"],
    ["rtmp://host:1935/live/name?key=K123", "rtmp://host:1935/live/***?key=***"],
    ["rtsp://admin:hunter2@cam.local:554/Streaming/101", "rtsp://***@cam.local:554/Streaming/101"],
    ["rtsp://user@cam/x", "rtsp://***@cam/x"],
    // An unencoded '@' or '/' in the password still ends at the last '@' before the query.
    ["rtsp://u:p@ss/w@cam/x", "rtsp://***@cam/x"],
    [
      "srt://h:9000?streamid=#!::r=live/x,m=publish&passphrase=longsecret1&latency=200",
      "srt://h:9000?streamid=***&passphrase=***&latency=200",
    ],
    ["https://cdn.example/a.m3u8?token=t0k&sig=s1g&exp=99", "https://cdn.example/a.m3u8?token=***&sig=***&exp=99"],
    ["https://cdn.example/a.m3u8?Key=v", "https://cdn.example/a.m3u8?Key=***"],
    ["/var/media/clip.mp4", "/var/media/clip.mp4"],
    ["file:///var/clip.mp4", "file:///var/clip.mp4"],
    ["rtmp://[::1]:1935/live/k", "rtmp://[::1]:1935/live/***"],
    ["http://h/%ff?key=%zz", "http://h/%ff?key=***"],
    ["", ""],
  ];
  for (const [raw, want] of cases) assert.equal(redactUrl(raw), want, raw);
});

test("redactUrl never throws and is idempotent", () => {
  for (const s of ["rtmp://", "rtsp://@", "srt://?", "x://a@b@c/d?key=", "rtmp:////", "%%%", "a://b?=&=&key"]) {
    const once = redactUrl(s);
    assert.equal(redactUrl(once), once, s);
  }
});

test("redactText redacts every URL in a message and stray secret pairs", () => {
  assert.equal(
    redactText("rtmp://x.example/live/SECRETKEY: Connection refused"),
    "rtmp://x.example/live/***: Connection refused",
  );
  assert.equal(
    redactText("[rtsp @ 0x1] method DESCRIBE failed: 401 Unauthorized (rtsp://u:pw@10.0.0.2/s)"),
    "[rtsp @ 0x1] method DESCRIBE failed: 401 Unauthorized (rtsp://***@10.0.0.2/s)",
  );
  assert.equal(redactText("bad streamid=publish:live/x passphrase=abc"), "bad streamid=*** passphrase=***");
  assert.equal(redactText("nothing secret here"), "nothing secret here");
});
