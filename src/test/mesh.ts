/** A MeshSignal on a real kit listener (loopback, a free port), for the mesh's unit tests. */
import { createHttpListener, type HttpListener } from "../core/http/server.ts";
import { silentLogger } from "../core/logger.ts";
import type { MeshSignal } from "../media/mesh/signal.ts";

export async function listenMesh(mesh: MeshSignal, name: string): Promise<{ port: number; listener: HttpListener }> {
  const listener = createHttpListener({
    name,
    log: silentLogger,
    handler: (_q, res) => res.writeHead(404).end(),
    upgrade: (req, socket, head, t) => mesh.upgrade(req, socket, head, t),
  });
  return { port: await listener.listen(0, "127.0.0.1"), listener };
}
