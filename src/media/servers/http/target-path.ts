/** Stream paths taken from request targets: decoded segment by segment, malformed percent-encoding is a 400. */
import { AmiError } from "../../../core/errors.ts";
import { safeDecode } from "../../../core/http/target.ts";

/** `live/a%20b` → `live/a b`; `%ff` throws AMI_INVALID_INPUT (400), never a URIError that reaches the process. */
export function decodePath(raw: string): string {
  const parts = raw.split("/").map(safeDecode);
  if (parts.some((p) => p === null))
    throw new AmiError("AMI_INVALID_INPUT", "malformed percent-encoding in the stream path");
  return parts.join("/");
}
