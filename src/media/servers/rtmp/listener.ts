/** A TCP listener: resolves once bound (port 0 picks a free port), reports the real port, closes cleanly. */
import { createServer, type Socket } from "node:net";

export interface Listener {
  port: number;
  close(): Promise<void>;
}

export function listen(host: string, port: number, onSocket: (s: Socket) => void): Promise<Listener> {
  const server = createServer(onSocket);
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
