/**
 * Static files of a built web app: content types, long caching for Vite's content-hashed /assets/, revalidation
 * (ETag) for everything else, gzip for text and WASM (compressed once per file version, kept in memory).
 */
import { createReadStream } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { extname, join, normalize, sep } from "node:path";
import { promisify } from "node:util";
import { gzip } from "node:zlib";

const gzipAsync = promisify(gzip);

export const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".wasm": "application/wasm",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".webp": "image/webp",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
};

const COMPRESSIBLE = new Set([".html", ".js", ".mjs", ".css", ".json", ".map", ".wasm", ".svg", ".txt"]);

/** Vite names everything under assets/ by content hash: a new build means new names, so cache forever. */
export const cacheControlFor = (urlPath: string): string =>
  urlPath.startsWith("/assets/") ? "public, max-age=31536000, immutable" : "no-cache";

export interface StaticFiles {
  /** Serves GET/HEAD for a path under the root; false when there is no such file (the caller answers 404). */
  serve(req: IncomingMessage, res: ServerResponse, urlPath: string): Promise<boolean>;
}

export function staticFiles(root: string, headers: Record<string, string> = {}): StaticFiles {
  const gzipped = new Map<string, { key: string; body: Promise<Buffer> }>();

  /** The file for a URL path, or null when it escapes the root or is not a regular file. */
  async function resolve(urlPath: string): Promise<{ file: string; size: number; mtimeMs: number } | null> {
    let rel: string;
    try {
      rel = decodeURIComponent(urlPath);
    } catch {
      return null;
    }
    if (rel.includes("\0")) return null;
    if (rel.endsWith("/")) rel += "index.html";
    const file = normalize(join(root, rel));
    if (file !== root && !file.startsWith(root.endsWith(sep) ? root : root + sep)) return null;
    try {
      const st = await stat(file);
      return st.isFile() ? { file, size: st.size, mtimeMs: st.mtimeMs } : null;
    } catch {
      return null;
    }
  }

  return {
    async serve(req, res, urlPath) {
      const found = await resolve(urlPath);
      if (!found) return false;
      const ext = extname(found.file).toLowerCase();
      const etag = `W/"${found.size.toString(16)}-${Math.floor(found.mtimeMs).toString(16)}"`;
      const base: Record<string, string> = {
        ...headers,
        "Content-Type": CONTENT_TYPES[ext] ?? "application/octet-stream",
        "Cache-Control": cacheControlFor(urlPath),
        ETag: etag,
        "X-Content-Type-Options": "nosniff",
      };
      const compressible = COMPRESSIBLE.has(ext) && found.size > 1024;
      if (compressible) base.Vary = "Accept-Encoding";
      if (req.headers["if-none-match"] === etag) {
        res.writeHead(304, base).end();
        return true;
      }
      const wantsGzip = /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
      if (compressible && wantsGzip) {
        let hit = gzipped.get(found.file);
        if (!hit || hit.key !== etag) {
          hit = { key: etag, body: readFile(found.file).then((b) => gzipAsync(b)) };
          gzipped.set(found.file, hit);
          hit.body.catch(() => gzipped.delete(found.file));
        }
        const body = await hit.body;
        res.writeHead(200, { ...base, "Content-Encoding": "gzip", "Content-Length": String(body.length) });
        res.end(req.method === "HEAD" ? undefined : body);
        return true;
      }
      res.writeHead(200, { ...base, "Content-Length": String(found.size) });
      if (req.method === "HEAD") res.end();
      else
        createReadStream(found.file)
          .on("error", () => res.destroy())
          .pipe(res);
      return true;
    },
  };
}
