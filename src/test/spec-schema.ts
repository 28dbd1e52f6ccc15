/**
 * Check what the homeserver sends against the Matrix spec's own OpenAPI definitions (v1.19, copied into
 * spec/matrix with the spec's licence), not against our reading of it. Refs across files are inlined, then ajv
 * (JSON Schema 2020-12, as OpenAPI 3.1 uses) validates.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import Ajv2020Module from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import YAML from "yaml";

const here = dirname(fileURLToPath(import.meta.url));
/** The copy in the repository (spec/matrix, Apache-2.0, with its LICENSE), so a fresh clone tests on its own. */
export const SPEC_DIR = [process.env.AMI_MATRIX_SPEC_DIR, resolve(here, "../../spec/matrix/data")].find(
  (p): p is string => !!p && existsSync(p),
) as string;

const fileCache = new Map<string, any>();
function loadYaml(path: string): any {
  let v = fileCache.get(path);
  if (v === undefined) {
    v = YAML.parse(readFileSync(path, "utf8"));
    fileCache.set(path, v);
  }
  return v;
}

function pointer(doc: any, ptr: string): any {
  if (!ptr || ptr === "/") return doc;
  return ptr
    .replace(/^\//, "")
    .split("/")
    .reduce((o, k) => o?.[k.replace(/~1/g, "/").replace(/~0/g, "~")], doc);
}

/** Inline every $ref (relative files and JSON pointers); drops OpenAPI-only keywords ajv doesn't know. */
function inline(node: any, file: string, seen: string[] = []): any {
  if (Array.isArray(node)) return node.map((n) => inline(n, file, seen));
  if (!node || typeof node !== "object") return node;
  if (typeof node.$ref === "string") {
    const [rel, ptr] = node.$ref.split("#");
    const target = rel ? resolve(dirname(file), rel) : file;
    const key = `${target}#${ptr ?? ""}`;
    if (seen.includes(key)) return {}; // recursive schema: accept anything below
    const { $ref: _r, ...rest } = node;
    const resolved = inline(pointer(loadYaml(target), ptr ?? ""), target, [...seen, key]);
    return Object.keys(rest).length ? { allOf: [resolved, inline(rest, file, seen)] } : resolved;
  }
  const out: any = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === "example" || k === "examples" || k.startsWith("x-")) continue;
    // `properties`/`patternProperties` keys are names, not keywords: recurse into their values only.
    out[k] = inline(v, file, seen);
  }
  return out;
}

// ajv is CommonJS: under NodeNext its default import is the module object.
const Ajv2020 = (Ajv2020Module as any).default ?? Ajv2020Module;
const addFormats = (addFormatsModule as any).default ?? addFormatsModule;
const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: true });
addFormats(ajv);
ajv.addFormat("mx-user-id", /^@/);
ajv.addFormat("mx-room-id", /^!/);
ajv.addFormat("mx-event-id", /^\$/);
ajv.addFormat("mx-server-name", /./);
ajv.addFormat("mx-mxc-uri", /^mxc:\/\//);
ajv.addFormat("mx-room-alias", /^#/);
ajv.addFormat("mx-unpadded-base64", /^[A-Za-z0-9+/]*$/);

type Validate = ((v: unknown) => boolean) & {
  errors?: Array<{ instancePath: string; message?: string; params: unknown }> | null;
};
const compiled = new Map<string, Validate>();

/**
 * Validate `body` as the response of `method path` with `status`, per `api/client-server/<file>.yaml`
 * (or another api dir via "server-server/x.yaml"). `path` is the spec's path template, e.g. "/sync".
 * Returns [] when valid, else readable error strings.
 */
export function specErrors(file: string, path: string, method: string, status: number, body: unknown): string[] {
  const full = join(SPEC_DIR, "api", file.includes("/") ? file : `client-server/${file}`);
  const key = `${full} ${method} ${path} ${status}`;
  let validate = compiled.get(key) as Validate;
  if (!validate) {
    const doc = loadYaml(full);
    const op = doc.paths?.[path]?.[method.toLowerCase()];
    if (!op) throw new Error(`spec: no ${method} ${path} in ${file}`);
    const resp = op.responses?.[String(status)];
    if (!resp) throw new Error(`spec: no ${status} response for ${method} ${path} in ${file}`);
    const r = resp.$ref ? pointer(doc, resp.$ref.split("#")[1]) : resp;
    const schema = r.content?.["application/json"]?.schema;
    if (!schema) throw new Error(`spec: no JSON schema for ${method} ${path} ${status}`);
    validate = ajv.compile(inline(schema, full));
    compiled.set(key, validate);
  }
  if (validate(body)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || "(body)"} ${e.message} ${JSON.stringify(e.params)}`);
}

/**
 * Validate `body` as the JSON request body of `method path`, per `api/<file>` (e.g. "push-gateway/push_notifier.yaml",
 * "/notify"): what a server sends to another API, such as a push gateway. Returns [] when valid.
 */
export function specRequestErrors(file: string, path: string, method: string, body: unknown): string[] {
  const full = join(SPEC_DIR, "api", file.includes("/") ? file : `client-server/${file}`);
  const key = `${full} ${method} ${path} request`;
  let validate = compiled.get(key) as Validate;
  if (!validate) {
    const op = loadYaml(full).paths?.[path]?.[method.toLowerCase()];
    const schema = op?.requestBody?.content?.["application/json"]?.schema;
    if (!schema) throw new Error(`spec: no JSON request body for ${method} ${path} in ${file}`);
    validate = ajv.compile(inline(schema, full));
    compiled.set(key, validate);
  }
  if (validate(body)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || "(body)"} ${e.message} ${JSON.stringify(e.params)}`);
}

/** Validate an event against an event schema file, e.g. "m.room.message" (event-schemas/schema/<name>.yaml). */
export function eventSchemaErrors(name: string, event: unknown): string[] {
  const full = join(SPEC_DIR, "event-schemas", "schema", `${name}.yaml`);
  const key = `event ${full}`;
  let validate = compiled.get(key) as Validate;
  if (!validate) {
    validate = ajv.compile(inline(loadYaml(full), full));
    compiled.set(key, validate);
  }
  if (validate(event)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || "(event)"} ${e.message} ${JSON.stringify(e.params)}`);
}

/** Validate an EDU against the server-server API's EDU schema, e.g. "m.device_list_update". */
export function eduSchemaErrors(name: string, edu: unknown): string[] {
  const full = join(SPEC_DIR, "api", "server-server", "definitions", "event-schemas", `${name}.yaml`);
  const key = `edu ${full}`;
  let validate = compiled.get(key) as Validate;
  if (!validate) {
    validate = ajv.compile(inline(loadYaml(full), full));
    compiled.set(key, validate);
  }
  if (validate(edu)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || "(edu)"} ${e.message} ${JSON.stringify(e.params)}`);
}

/** Throw with every error (for node:test). */
export function assertSpec(file: string, path: string, method: string, status: number, body: unknown): void {
  const errs = specErrors(file, path, method, status, body);
  if (errs.length)
    throw new Error(
      `${method} ${path} ${status} does not match the spec (${file}):\n  ${errs.join("\n  ")}\nbody: ${JSON.stringify(body).slice(0, 2000)}`,
    );
}

/** The statuses the spec documents for `method path` in `file` (e.g. ["200", "400", "429"]). */
export function specStatuses(file: string, path: string, method: string): string[] {
  const full = join(SPEC_DIR, "api", file.includes("/") ? file : `client-server/${file}`);
  const op = loadYaml(full).paths?.[path]?.[method.toLowerCase()];
  if (!op) throw new Error(`spec: no ${method} ${path} in ${file}`);
  return Object.keys(op.responses ?? {});
}
