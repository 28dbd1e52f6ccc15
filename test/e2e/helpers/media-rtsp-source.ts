/**
 * An RTSP source for tests. ffmpeg can push RTSP (ANNOUNCE/RECORD) but cannot serve players, so this is a tiny
 * RTSP relay: ffmpeg publishes a generated pattern into it over TCP (interleaved), and a player (our pull's
 * ffmpeg) DESCRIBEs, SETUPs the announced tracks over TCP and PLAYs. Killing the source kills the relay too.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createServer, type Server, type Socket } from "node:net";

interface Request {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string;
}

interface Player {
  sock: Socket;
  /** Publisher channel -> player channel. */
  channels: Map<number, number>;
  playing: boolean;
}

export interface RtspSource {
  url: string;
  /** Stops the publisher and the relay (the source "dies"). */
  stop(): Promise<void>;
}

export async function startRtspSource(port: number, path = "x"): Promise<RtspSource> {
  let sdp = "";
  /** SDP track control (e.g. streamid=0) -> publisher interleaved RTP channel. */
  const trackChannel = new Map<string, number>();
  const players = new Set<Player>();
  const sockets = new Set<Socket>();
  const server: Server = createServer((sock) => {
    sockets.add(sock);
    sock.on("close", () => sockets.delete(sock));
    sock.on("error", () => {});
    let buf = Buffer.alloc(0);
    let player: Player | undefined;
    let publisher = false;
    sock.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (buf[0] === 0x24) {
          if (buf.length < 4) return;
          const len = buf.readUInt16BE(2);
          if (buf.length < 4 + len) return;
          const frame = buf.subarray(0, 4 + len);
          buf = buf.subarray(4 + len);
          if (publisher) relay(frame);
          continue;
        }
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = buf.subarray(0, end).toString("latin1").split("\r\n");
        const headers: Record<string, string> = {};
        for (const l of head.slice(1)) {
          const i = l.indexOf(":");
          headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
        }
        const clen = Number(headers["content-length"] ?? 0);
        if (buf.length < end + 4 + clen) return;
        const [method = "", url = ""] = (head[0] ?? "").split(" ");
        const req: Request = { method, url, headers, body: buf.subarray(end + 4, end + 4 + clen).toString("latin1") };
        buf = buf.subarray(end + 4 + clen);
        handle(req);
      }
    });
    const respond = (req: Request, status: string, extra: Record<string, string> = {}, body = "") => {
      const lines = [`RTSP/1.0 ${status}`, `CSeq: ${req.headers.cseq ?? "0"}`, "Session: 12345678;timeout=60"];
      for (const [k, v] of Object.entries(extra)) lines.push(`${k}: ${v}`);
      if (body) lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
      sock.write(`${lines.join("\r\n")}\r\n\r\n${body}`);
    };
    const track = (url: string) => url.split("/").at(-1) ?? "";
    const handle = (req: Request) => {
      const interleaved = /interleaved=(\d+)/.exec(req.headers.transport ?? "")?.[1];
      switch (req.method) {
        case "OPTIONS":
          return respond(req, "200 OK", { Public: "OPTIONS, DESCRIBE, ANNOUNCE, SETUP, PLAY, RECORD, TEARDOWN" });
        case "ANNOUNCE":
          publisher = true;
          sdp = req.body;
          return respond(req, "200 OK");
        case "DESCRIBE":
          if (!sdp) return respond(req, "404 Not Found");
          return respond(
            req,
            "200 OK",
            { "Content-Base": `${req.url.replace(/\/$/, "")}/`, "Content-Type": "application/sdp" },
            sdp,
          );
        case "SETUP":
          if (interleaved === undefined) return respond(req, "461 Unsupported Transport");
          if (publisher) trackChannel.set(track(req.url), Number(interleaved));
          else {
            player ??= { sock, channels: new Map(), playing: false };
            const from = trackChannel.get(track(req.url));
            if (from === undefined) return respond(req, "404 Not Found");
            player.channels.set(from, Number(interleaved));
            player.channels.set(from + 1, Number(interleaved) + 1);
          }
          return respond(req, "200 OK", { Transport: req.headers.transport ?? "" });
        case "RECORD":
          return respond(req, "200 OK");
        case "PLAY":
          if (player) {
            player.playing = true;
            players.add(player);
            sock.once("close", () => players.delete(player as Player));
          }
          return respond(req, "200 OK");
        case "TEARDOWN":
          respond(req, "200 OK");
          sock.end();
          return;
        default:
          return respond(req, "501 Not Implemented");
      }
    };
  });
  const relay = (frame: Buffer) => {
    for (const p of players) {
      const ch = p.channels.get(frame[1] ?? 0);
      if (ch === undefined || !p.playing) continue;
      const out = Buffer.from(frame);
      out[1] = ch;
      p.sock.write(out);
    }
  };
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
  const url = `rtsp://127.0.0.1:${port}/${path}`;
  const ffmpeg: ChildProcess = spawn(
    "ffmpeg",
    [
      ...["-hide_banner", "-nostdin", "-loglevel", "error", "-re"],
      ...["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=440"],
      ...["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-c:a", "aac"],
      ...["-f", "rtsp", "-rtsp_transport", "tcp", url],
    ],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  return {
    url,
    async stop() {
      if (ffmpeg.exitCode === null) {
        ffmpeg.kill("SIGKILL");
        await new Promise((r) => ffmpeg.once("close", r));
      }
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
