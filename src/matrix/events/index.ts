/** Pure Matrix event primitives: canonical JSON, base64, signing, hashing, redaction, auth rules, IDs, state resolution. */
export * from "./auth.ts";
export * from "./auth-chain.ts";
export * from "./auth-third-party.ts";
export * from "./base64.ts";
export * from "./canonical-json.ts";
export * from "./event-signing.ts";
export * from "./hashing.ts";
export * from "./ids.ts";
export * from "./power-levels.ts";
export * from "./redaction.ts";
export * from "./room-versions.ts";
export * from "./signing.ts";
export * from "./state-res.ts";
export * from "./types.ts";
