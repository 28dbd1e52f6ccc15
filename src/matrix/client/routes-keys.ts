/** End-to-end encryption: key management, cross-signing, send-to-device and server-side key backup. */
import type { Route } from "../http/types.ts";
import { routes as crossSigning } from "./cross-signing.ts";
import { routes as keyBackup } from "./key-backup.ts";
import { routes as keys } from "./keys.ts";
import { routes as toDevice } from "./to-device.ts";

export const keyRoutes: Route[] = [...keys, ...crossSigning, ...toDevice, ...keyBackup];
