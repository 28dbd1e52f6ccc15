/**
 * RTMPS certificates: the configured PEM pair (media.rtmps.cert/key), or a self-signed pair generated once with
 * the `openssl` CLI under <data dir>/tls and reused on every start (publishers that pin it keep working).
 */
import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, readFile, rename } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { AmiError } from "../../../core/errors.ts";
import type { Logger } from "../../../core/logger.ts";
import type { TlsFiles } from "./listener.ts";

const run = promisify(execFile);

async function read(file: string, what: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (e) {
    throw new AmiError("AMI_INVALID_INPUT", `media.rtmps.${what}: cannot read '${file}': ${(e as Error).message}`);
  }
}

export async function rtmpsFiles(
  c: { cert: string | null; key: string | null },
  dataDir: string,
  log: Logger,
  openssl = "openssl",
): Promise<TlsFiles> {
  if (c.cert && c.key) return { cert: await read(c.cert, "cert"), key: await read(c.key, "key") };
  const dir = join(dataDir, "tls");
  const cert = join(dir, "rtmps-cert.pem");
  const key = join(dir, "rtmps-key.pem");
  if (!existsSync(cert) || !existsSync(key)) {
    await mkdir(dir, { recursive: true });
    // Written under temporary names and renamed: a crash mid-way never leaves half a pair to be reused.
    const args = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "3650"];
    args.push("-subj", "/CN=ami-streams", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1");
    args.push("-keyout", `${key}.tmp`, "-out", `${cert}.tmp`);
    try {
      await run(openssl, args);
    } catch (e) {
      throw new AmiError(
        "AMI_INVALID_INPUT",
        `media.rtmps: no cert/key configured and '${openssl}' could not generate a self-signed pair: ${(e as Error).message}`,
      );
    }
    await chmod(`${key}.tmp`, 0o600);
    await rename(`${key}.tmp`, key);
    await rename(`${cert}.tmp`, cert);
    const x = new X509Certificate(await readFile(cert));
    log.info("rtmps: generated a self-signed certificate (set media.rtmps.cert/key to use your own)", {
      cert,
      key,
      sha256: x.fingerprint256,
      validTo: x.validTo,
    });
  }
  return { cert: await readFile(cert), key: await readFile(key) };
}
