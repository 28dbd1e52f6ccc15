/** Path-segment trie: literal segments first, then `{param}`; a final `{param?}` may be missing or empty. */
import type { Route } from "./types.ts";

interface Node {
  literal: Map<string, Node>;
  param?: { name: string; node: Node };
  /** Routes ending here, by method. */
  routes: Map<string, Route>;
  /** Routes whose optional last parameter is absent here: [paramName, route] by method. */
  optional: Map<string, [string, Route]>;
}

const node = (): Node => ({ literal: new Map(), routes: new Map(), optional: new Map() });

export interface Match {
  route: Route;
  params: Record<string, string>;
}

export class Router {
  readonly #root = node();

  add(route: Route): void {
    for (const p of route.paths) {
      this.#insert(p, route);
      if (p.startsWith("/_matrix/client/v3/")) this.#insert(p.replace("/v3/", "/r0/"), route);
    }
  }

  #insert(pattern: string, route: Route): void {
    const segs = pattern.split("/").slice(1);
    let n = this.#root;
    for (let i = 0; i < segs.length; i++) {
      const s = segs[i];
      const m = /^\{(\w+)(\?)?\}$/.exec(s);
      if (m) {
        if (m[2]) {
          if (i !== segs.length - 1) throw new Error(`optional param must be last: ${pattern}`);
          n.optional.set(route.method, [m[1], route]);
        }
        if (n.param && n.param.name !== m[1]) throw new Error(`param name clash at ${pattern}`);
        n.param ??= { name: m[1], node: node() };
        n = n.param.node;
      } else {
        const next = n.literal.get(s) ?? node();
        n.literal.set(s, next);
        n = next;
      }
    }
    if (n.routes.has(route.method)) throw new Error(`duplicate route ${route.method} ${pattern}`);
    n.routes.set(route.method, route);
  }

  /** `null`: no such path; `"method"`: the path exists for other methods only. */
  match(method: string, path: string): Match | "method" | null {
    const raw = path.split("/").slice(1);
    const params: Record<string, string> = {};
    const found = this.#walk(this.#root, raw, 0, params, method);
    if (found) return { route: found, params };
    return this.#walk(this.#root, raw, 0, {}, null) ? "method" : null;
  }

  #walk(n: Node, segs: string[], i: number, params: Record<string, string>, method: string | null): Route | null {
    if (i === segs.length) {
      const r = method ? n.routes.get(method) : n.routes.values().next().value;
      if (r) return r;
      const opt = method ? n.optional.get(method) : n.optional.values().next().value;
      if (opt) {
        params[opt[0]] = "";
        return opt[1];
      }
      return null;
    }
    const s = segs[i];
    const lit = n.literal.get(s);
    if (lit) {
      const r = this.#walk(lit, segs, i + 1, params, method);
      if (r) return r;
    }
    if (n.param) {
      let v: string;
      try {
        v = decodeURIComponent(s);
      } catch {
        return null;
      }
      // An empty segment only fills an optional trailing parameter (`/state/m.room.name/`).
      if (v !== "" || (i === segs.length - 1 && n.optional.size > 0)) {
        const r = this.#walk(n.param.node, segs, i + 1, params, method);
        if (r) {
          params[n.param.name] = v;
          return r;
        }
      }
    }
    return null;
  }
}
