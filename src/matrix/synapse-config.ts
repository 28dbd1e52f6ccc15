/**
 * Checks a Synapse `homeserver.yaml` (`ami-streams matrix config validate homeserver.yaml`): the keys Synapse needs,
 * their types, listener and database shapes, secrets left at placeholder values and open registration nobody
 * guards. Every issue names its key path (`listeners[0].port: expected an integer`). Keys we do not know are left
 * alone, as Synapse leaves them. Parsed as YAML 1.1, as Synapse's PyYAML reads it (`yes`/`no`/`on`/`off` are
 * booleans there).
 */
import YAML from "yaml";
import type { ConfigIssue } from "../core/config.ts";

/** A Synapse config, told from ours by its snake_case top-level keys. */
export function looksLikeSynapse(raw: unknown): boolean {
  if (!isObject(raw)) return false;
  return ["server_name", "listeners", "signing_key_path", "report_stats"].some((k) => k in raw);
}

export function parseSynapseYaml(text: string): unknown {
  return YAML.parse(text, { version: "1.1" }) ?? {};
}

/** Values people leave in a secret when copying a sample config. */
const PLACEHOLDER =
  /^(|changeme.*|change[-_ ]me.*|secret|password|passw0rd|pass|xxx+|todo|tbd|fixme|replace[-_ ]?me.*|your[-_ ].*|<.*>|\$\{.*\}|placeholder.*|example.*|some[-_ ]?secret.*|s3cr3t)$/i;
const MIN_SECRET = 16;

/** Top-level secrets: a random string each, at least MIN_SECRET characters. */
const SECRETS = ["registration_shared_secret", "macaroon_secret_key", "form_secret", "turn_shared_secret"] as const;

const LISTENER_TYPES = ["http", "manhole", "metrics", "replication"];
const RESOURCE_NAMES = [
  "client",
  "federation",
  "keys",
  "media",
  "static",
  "metrics",
  "openid",
  "replication",
  "health",
  "consent",
  "webclient",
];

/** Booleans Synapse reads at the top level (a string "true" there is a mistake PyYAML keeps). */
const BOOLEANS = [
  "enable_registration",
  "enable_registration_without_verification",
  "registration_requires_token",
  "enable_registration_captcha",
  "allow_guest_access",
  "enable_metrics",
  "suppress_key_server_warning",
  "allow_public_rooms_over_federation",
  "allow_public_rooms_without_auth",
  "enable_media_repo",
  "url_preview_enabled",
  "require_auth_for_profile_requests",
  "limit_profile_requests_to_users_who_share_rooms",
  "include_profile_data_on_invite",
  "turn_allow_guests",
  "serve_server_wellknown",
  "use_presence",
  "block_non_admin_invites",
  "encryption_enabled_by_default_for_room_type",
];
const STRINGS = [
  "public_baseurl",
  "media_store_path",
  "pid_file",
  "log_config",
  "signing_key_path",
  "web_client_location",
  "recaptcha_public_key",
  "recaptcha_private_key",
  "registration_shared_secret_path",
  "macaroon_secret_key_path",
  "form_secret_path",
  "turn_shared_secret_path",
  "tls_certificate_path",
  "tls_private_key_path",
];
/** Synapse durations: milliseconds, or a string with a unit ("1h", "7d"). */
const DURATIONS = ["turn_user_lifetime", "redaction_retention_period", "user_ips_max_age"];
/** Sizes: bytes, or a string with a unit ("50M"). */
const SIZES = ["max_upload_size", "max_image_pixels", "max_spider_size"];

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

const join = (path: string, key: string | number): string =>
  typeof key === "number" ? `${path}[${key}]` : path ? `${path}.${key}` : key;

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  if (typeof v === "string") return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return `${typeof v} ${String(v)}`;
}

class Checker {
  readonly issues: ConfigIssue[] = [];
  add(key: string, message: string): void {
    this.issues.push({ key, message });
  }
  expected(key: string, what: string, v: unknown): void {
    this.add(key, `expected ${what}, got ${describe(v)}`);
  }
  str(o: Obj, k: string, path: string, required = false): string | undefined {
    const v = o[k];
    const key = join(path, k);
    if (v === undefined || v === null) {
      if (required) this.add(key, "required (a string)");
      return undefined;
    }
    if (typeof v !== "string") return void this.expected(key, "a string", v);
    return v;
  }
  int(o: Obj, k: string, path: string, opts: { required?: boolean; min?: number; max?: number } = {}) {
    const v = o[k];
    const key = join(path, k);
    if (v === undefined || v === null) {
      if (opts.required) this.add(key, "required (an integer)");
      return undefined;
    }
    if (typeof v !== "number" || !Number.isInteger(v)) return void this.expected(key, "an integer", v);
    if (opts.min !== undefined && v < opts.min) this.add(key, `must be at least ${opts.min}, got ${v}`);
    if (opts.max !== undefined && v > opts.max) this.add(key, `must be at most ${opts.max}, got ${v}`);
    return v;
  }
  bool(o: Obj, k: string, path: string, required = false): boolean | undefined {
    const v = o[k];
    const key = join(path, k);
    if (v === undefined || v === null) {
      if (required) this.add(key, "required (true or false)");
      return undefined;
    }
    if (typeof v !== "boolean") return void this.expected(key, "true or false", v);
    return v;
  }
  obj(o: Obj, k: string, path: string, required = false): Obj | undefined {
    const v = o[k];
    const key = join(path, k);
    if (v === undefined || v === null) {
      if (required) this.add(key, "required (a mapping)");
      return undefined;
    }
    if (!isObject(v)) return void this.expected(key, "a mapping", v);
    return v;
  }
  list(o: Obj, k: string, path: string, required = false): unknown[] | undefined {
    const v = o[k];
    const key = join(path, k);
    if (v === undefined || v === null) {
      if (required) this.add(key, "required (a list)");
      return undefined;
    }
    if (!Array.isArray(v)) return void this.expected(key, "a list", v);
    return v;
  }
  strings(o: Obj, k: string, path: string): string[] | undefined {
    const l = this.list(o, k, path);
    if (!l) return undefined;
    l.forEach((v, i) => {
      if (typeof v !== "string") this.expected(join(join(path, k), i), "a string", v);
    });
    return l.filter((v): v is string => typeof v === "string");
  }
  /** A number, or a string with a unit (Synapse's durations and sizes). */
  amount(o: Obj, k: string, path: string, units: RegExp, what: string): void {
    const v = o[k];
    if (v === undefined || v === null) return;
    if (typeof v === "number" && Number.isInteger(v) && v >= 0) return;
    if (typeof v === "string" && units.test(v)) return;
    this.expected(join(path, k), what, v);
  }
  secret(o: Obj, k: string, path: string): void {
    const v = o[k];
    if (typeof v !== "string") return;
    const key = join(path, k);
    if (PLACEHOLDER.test(v.trim())) this.add(key, "still a placeholder value: set a random secret");
    else if (v.length < MIN_SECRET)
      this.add(key, `too short for a secret (${v.length} characters; use at least ${MIN_SECRET} random ones)`);
  }
}

const SERVER_NAME = /^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/;

function checkListener(c: Checker, l: unknown, path: string): void {
  if (!isObject(l)) {
    c.expected(path, "a mapping", l);
    return;
  }
  const type = c.str(l, "type", path, true);
  if (type !== undefined && !LISTENER_TYPES.includes(type))
    c.add(join(path, "type"), `expected one of ${LISTENER_TYPES.join(", ")}, got ${JSON.stringify(type)}`);
  // A listener binds a TCP port or (Synapse >= 1.81, http only) a UNIX socket path.
  if (l.path !== undefined) c.str(l, "path", path);
  else c.int(l, "port", path, { required: true, min: 1, max: 65535 });
  c.bool(l, "tls", path);
  c.bool(l, "x_forwarded", path);
  c.strings(l, "bind_addresses", path);
  if (l.bind_address !== undefined) c.str(l, "bind_address", path);
  const resources = c.list(l, "resources", path, type === "http");
  for (const [i, r] of (resources ?? []).entries()) {
    const rp = join(join(path, "resources"), i);
    if (!isObject(r)) {
      c.expected(rp, "a mapping", r);
      continue;
    }
    const names = c.strings(r, "names", rp);
    if (names === undefined && r.names === undefined) c.add(join(rp, "names"), "required (a list)");
    names?.forEach((n, j) => {
      if (!RESOURCE_NAMES.includes(n))
        c.add(
          join(join(rp, "names"), j),
          `unknown resource ${JSON.stringify(n)} (one of ${RESOURCE_NAMES.join(", ")})`,
        );
    });
    c.bool(r, "compress", rp);
  }
}

function checkDatabase(c: Checker, db: Obj): void {
  const name = c.str(db, "name", "database", true);
  const args = c.obj(db, "args", "database", true);
  c.int(db, "txn_limit", "database", { min: 0 });
  c.bool(db, "allow_unsafe_locale", "database");
  if (name === undefined) return;
  if (name === "sqlite3") {
    if (args) c.str(args, "database", "database.args", true);
    return;
  }
  if (name !== "psycopg2") {
    c.add("database.name", `expected psycopg2 (PostgreSQL) or sqlite3, got ${JSON.stringify(name)}`);
    return;
  }
  if (!args) return;
  const p = "database.args";
  // psycopg2 takes `dbname`; Synapse also accepts the older `database`.
  if (args.dbname === undefined && args.database === undefined) c.add(`${p}.dbname`, "required (a string)");
  c.str(args, "dbname", p);
  c.str(args, "database", p);
  c.str(args, "user", p, true);
  c.str(args, "host", p, true);
  c.str(args, "password", p);
  if (args.password !== undefined) c.secret(args, "password", p);
  c.int(args, "port", p, { min: 1, max: 65535 });
  const min = c.int(args, "cp_min", p, { min: 1 });
  const max = c.int(args, "cp_max", p, { min: 1 });
  if (min !== undefined && max !== undefined && min > max) c.add(`${p}.cp_min`, `must not exceed cp_max (${max})`);
}

function checkRedis(c: Checker, r: Obj): void {
  const enabled = c.bool(r, "enabled", "redis");
  c.str(r, "host", "redis");
  c.int(r, "port", "redis", { min: 1, max: 65535 });
  c.int(r, "dbid", "redis", { min: 0 });
  c.str(r, "password", "redis");
  c.str(r, "password_path", "redis");
  if (enabled && r.password !== undefined) c.secret(r, "password", "redis");
}

function checkRegistration(c: Checker, o: Obj): void {
  if (o.enable_registration !== true) return;
  const token = o.registration_requires_token === true;
  const captcha = o.enable_registration_captcha === true;
  const threePid = Array.isArray(o.registrations_require_3pid) && o.registrations_require_3pid.length > 0;
  if (captcha) {
    for (const k of ["recaptcha_public_key", "recaptcha_private_key"]) {
      if (typeof o[k] !== "string" || PLACEHOLDER.test(String(o[k]).trim()))
        c.add(k, "required by enable_registration_captcha (your reCAPTCHA key)");
    }
  }
  if (!token && !captcha && !threePid && o.enable_registration_without_verification !== true) {
    c.add(
      "enable_registration",
      "open registration with no captcha, token or email/phone verification lets anyone create accounts: set " +
        "registration_requires_token, enable_registration_captcha or registrations_require_3pid (or " +
        "enable_registration_without_verification: true if you mean it)",
    );
  }
}

/** Every issue of a parsed Synapse config, each with its key path. */
export function validateSynapseConfig(raw: unknown): ConfigIssue[] {
  const c = new Checker();
  if (!isObject(raw)) {
    c.expected("(root)", "a mapping", raw);
    return c.issues;
  }
  const name = c.str(raw, "server_name", "", true);
  if (name !== undefined && !SERVER_NAME.test(name))
    c.add("server_name", `expected a host name with an optional :port, got ${JSON.stringify(name)}`);
  const baseUrl = c.str(raw, "public_baseurl", "");
  if (baseUrl !== undefined && !/^https?:\/\/[^/\s]+(\/\S*)?$/.test(baseUrl))
    c.add("public_baseurl", `expected an http(s) URL, got ${JSON.stringify(baseUrl)}`);
  // Synapse refuses to start without an explicit choice here.
  c.bool(raw, "report_stats", "", true);

  const listeners = c.list(raw, "listeners", "", true);
  if (listeners?.length === 0) c.add("listeners", "must list at least one listener");
  for (const [i, l] of (listeners ?? []).entries()) checkListener(c, l, join("listeners", i));
  const ports = (listeners ?? []).flatMap((l) =>
    isObject(l) && typeof l.port === "number"
      ? [{ port: l.port, binds: JSON.stringify(l.bind_addresses ?? null) }]
      : [],
  );
  ports.forEach((p, i) => {
    if (ports.findIndex((q) => q.port === p.port && q.binds === p.binds) !== i)
      c.add(`listeners[${i}].port`, `port ${p.port} is already used by an earlier listener`);
  });
  if (
    listeners?.some((l) => isObject(l) && l.tls === true) &&
    (typeof raw.tls_certificate_path !== "string" || typeof raw.tls_private_key_path !== "string")
  )
    c.add(
      "tls_certificate_path",
      "a listener has tls: true, so tls_certificate_path and tls_private_key_path are required",
    );

  const db = c.obj(raw, "database", "", true);
  if (db) checkDatabase(c, db);
  const redis = c.obj(raw, "redis", "");
  if (redis) checkRedis(c, redis);

  for (const k of BOOLEANS) c.bool(raw, k, "");
  for (const k of STRINGS) c.str(raw, k, "");
  for (const k of DURATIONS) c.amount(raw, k, "", /^\d+(ms|s|m|h|d|w|y)?$/, "milliseconds or a duration such as 1h");
  for (const k of SIZES) c.amount(raw, k, "", /^\d+[KMGT]?$/i, "bytes or a size such as 50M");
  for (const k of SECRETS) {
    c.str(raw, k, "");
    c.secret(raw, k, "");
  }
  const turnUris = c.strings(raw, "turn_uris", "");
  turnUris?.forEach((u, i) => {
    if (!/^turns?:/.test(u)) c.add(`turn_uris[${i}]`, `expected a turn: or turns: URI, got ${JSON.stringify(u)}`);
  });
  if (turnUris?.length && raw.turn_shared_secret === undefined && raw.turn_shared_secret_path === undefined)
    c.add("turn_shared_secret", "required with turn_uris (coturn's static-auth-secret)");
  c.list(raw, "registrations_require_3pid", "");
  const trusted = c.list(raw, "trusted_key_servers", "");
  for (const [i, t] of (trusted ?? []).entries()) {
    const tp = `trusted_key_servers[${i}]`;
    if (isObject(t)) {
      c.str(t, "server_name", tp, true);
      c.obj(t, "verify_keys", tp);
    } else c.expected(tp, "a mapping", t);
  }
  checkRegistration(c, raw);
  // Workers: `worker_app` belongs in a worker's own file, never in the main process's config.
  if (raw.worker_app !== undefined) c.add("worker_app", "belongs in a worker's config file, not homeserver.yaml");
  return c.issues;
}
