/**
 * A TCP listener, or with `tls` a TLS one (RTMPS): resolves once bound (port 0 picks a free port), reports the
 * real port, closes cleanly. Over TLS a socket reaches `onSocket` only after its TLS handshake; a client that
 * sends anything else (plain RTMP, garbage) fails the handshake and only its own connection is closed.
 * `CappedListener` adds the connection caps the RTMP and RTSP servers share.
 */
import { createServer, type Server, type Socket } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import type { Logger } from "../../../core/logger.ts";

export interface Listener {
  port: number;
  close(): Promise<void>;
}

export interface TlsFiles {
  /** PEM certificate (chain) and private key. */
  cert: Buffer;
  key: Buffer;
}

/** A TLS handshake that has not finished by then is dropped (a silent client must not hold a socket forever). */
const TLS_HANDSHAKE_MS = 10_000;

export function listen(
  host: string,
  port: number,
  onSocket: (s: Socket) => void,
  tls?: TlsFiles,
  onTlsError?: (e: Error, remote: string) => void,
  maxConnections?: number,
): Promise<Listener> {
  let server: Server;
  if (tls) {
    const s = createTlsServer({ cert: tls.cert, key: tls.key, handshakeTimeout: TLS_HANDSHAKE_MS }, onSocket);
    // Node destroys the socket after a failed handshake; we only report it.
    s.on("tlsClientError", (e, sock) => onTlsError?.(e, `${sock.remoteAddress}:${sock.remotePort}`));
    server = s;
  } else server = createServer(onSocket);
  // Node closes sockets beyond this before anything of ours runs; TLS sockets count while they shake hands.
  if (maxConnections) server.maxConnections = maxConnections;
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      const addr = server.address();
      resolve({
        port: typeof addr === "object" && addr ? addr.port : port,
        close: () => new Promise<void>((r) => server.close(() => r())),
      });
    });
  });
}

/** Refused connections are logged at most this often (a flood must not flood the log too). */
const REFUSAL_LOG_MS = 10_000;

export interface CappedOptions<C> {
  host: string;
  port: number;
  /** `rtmp`, `rtmps`, `rtsp`, `rtsps`: names the log lines. */
  name: string;
  log: Logger;
  maxConnections: number;
  maxConnectionsPerAddress: number;
  tls?: TlsFiles;
  /** An admitted socket becomes a connection (which closes its socket when it ends). */
  connect(socket: Socket): C;
}

/**
 * A listener (RTMP, RTSP and their TLS forms) whose connections are capped in total and per client address: a
 * refused one is closed at once, before any byte is read, and refusals are logged at most every 10 s.
 */
export class CappedListener<C extends { close(reason: string): void }> {
  readonly conns = new Set<C>();
  readonly #perAddress = new Map<string, number>();
  #listener: Listener | undefined;
  #refused = 0;
  #refusalLogged = 0;

  static async open<C extends { close(reason: string): void }>(o: CappedOptions<C>): Promise<CappedListener<C>> {
    const s = new CappedListener<C>();
    s.#listener = await listen(
      o.host,
      o.port,
      (socket) => {
        const addr = socket.remoteAddress ?? "";
        const n = s.#perAddress.get(addr) ?? 0;
        const full = s.conns.size >= o.maxConnections;
        if (full || n >= o.maxConnectionsPerAddress) {
          socket.destroy();
          s.#refuse(o, addr, full ? "maxConnections" : "maxConnectionsPerAddress");
          return;
        }
        s.#perAddress.set(addr, n + 1);
        const c = o.connect(socket);
        s.conns.add(c);
        socket.once("close", () => {
          s.conns.delete(c);
          const left = (s.#perAddress.get(addr) ?? 1) - 1;
          if (left > 0) s.#perAddress.set(addr, left);
          else s.#perAddress.delete(addr);
        });
      },
      o.tls,
      (e, remote) => o.log.info(`${o.name}: TLS handshake failed; connection closed`, { remote, error: e.message }),
      // One spare: our own cap is reached first and logs the refusal.
      o.maxConnections + 1,
    );
    o.log.info(`${o.name} listening`, { host: o.host, port: s.port });
    return s;
  }

  #refuse(o: CappedOptions<C>, addr: string, cap: string): void {
    this.#refused++;
    const now = Date.now();
    if (now - this.#refusalLogged < REFUSAL_LOG_MS) return;
    this.#refusalLogged = now;
    o.log.warn(`${o.name} connection refused: too many connections`, { remote: addr, cap, refused: this.#refused });
    this.#refused = 0;
  }

  get port(): number {
    return this.#listener?.port ?? 0;
  }

  async close(): Promise<void> {
    for (const c of this.conns) c.close("server shutting down");
    await this.#listener?.close();
  }
}
