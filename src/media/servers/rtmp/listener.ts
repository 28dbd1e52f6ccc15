/**
 * A TCP listener, or with `tls` a TLS one (RTMPS): resolves once bound (port 0 picks a free port), reports the
 * real port, closes cleanly. Over TLS a socket reaches `onSocket` only after its TLS handshake; a client that
 * sends anything else (plain RTMP, garbage) fails the handshake and only its own connection is closed.
 */
import { createServer, type Server, type Socket } from "node:net";
import { createServer as createTlsServer } from "node:tls";

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
