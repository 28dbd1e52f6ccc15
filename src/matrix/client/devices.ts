/** Device management (spec: "Device Management"). */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { devicesChanged } from "../federation/device-lists.ts";
import { json, type Route } from "../http/types.ts";
import { authOf } from "../service/auth.ts";
import { checkUia, finishUia } from "../service/uia.ts";
import type { DeviceRow } from "../store/types.ts";
import { parseBody } from "../validate.ts";

const FLOWS = [["m.login.password"]];

/** The spec's Device object: optional fields are omitted, never null. */
function deviceJson(d: DeviceRow): Record<string, unknown> {
  const o: Record<string, unknown> = { device_id: d.deviceId };
  if (d.displayName !== null) o.display_name = d.displayName;
  if (d.lastSeenIp !== null) o.last_seen_ip = d.lastSeenIp;
  if (d.lastSeenTs !== null) o.last_seen_ts = d.lastSeenTs;
  return o;
}

const putBody = z.object({ display_name: z.string().max(512).optional() });
const deleteBody = z.object({ auth: z.unknown().optional() });
const deleteManyBody = z.object({ devices: z.array(z.string().max(255)).max(1000), auth: z.unknown().optional() });

export const routes: Route[] = [
  /** GET /_matrix/client/v3/devices */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/devices"],
    auth: "required",
    handler: async (req) =>
      json({ devices: (await req.hs.store.accounts.listDevices(req.requester!.userId)).map(deviceJson) }),
  },
  /** GET /_matrix/client/v3/devices/{deviceId} */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/devices/{deviceId}"],
    auth: "required",
    handler: async (req) => {
      const d = await req.hs.store.accounts.getDevice(req.requester!.userId, req.params.deviceId);
      if (!d) throw new AmiError("M_NOT_FOUND", "Unknown device");
      return json(deviceJson(d));
    },
  },
  /** PUT /_matrix/client/v3/devices/{deviceId} */
  {
    method: "PUT",
    paths: ["/_matrix/client/v3/devices/{deviceId}"],
    auth: "required",
    handler: async (req) => {
      const b = parseBody(putBody, req.body);
      const userId = req.requester!.userId;
      const d = await req.hs.store.accounts.getDevice(userId, req.params.deviceId);
      if (!d) throw new AmiError("M_NOT_FOUND", "Unknown device");
      if (b.display_name !== undefined && b.display_name !== d.displayName) {
        await req.hs.store.accounts.updateDevice(userId, d.deviceId, { displayName: b.display_name });
        // The name is part of what other users' clients (and servers) see of the device.
        await devicesChanged(req.hs, userId, [d.deviceId]);
      }
      return json({});
    },
  },
  /** DELETE /_matrix/client/v3/devices/{deviceId} */
  {
    method: "DELETE",
    paths: ["/_matrix/client/v3/devices/{deviceId}"],
    auth: "required",
    body: "json",
    handler: async (req) => {
      const r = req.requester!;
      parseBody(deleteBody, req.body);
      const d = await req.hs.store.accounts.getDevice(r.userId, req.params.deviceId);
      if (!d) throw new AmiError("M_NOT_FOUND", "Unknown device");
      const uia = await checkUia(req, FLOWS, `delete_devices:${r.userId}`, r.userId);
      if (!uia.done) return uia.reply;
      await authOf(req.hs).deleteDevices(r.userId, [d.deviceId]);
      finishUia(req.hs, uia.session);
      return json({});
    },
  },
  /** POST /_matrix/client/v3/delete_devices */
  {
    method: "POST",
    paths: ["/_matrix/client/v3/delete_devices"],
    auth: "required",
    handler: async (req) => {
      const r = req.requester!;
      const b = parseBody(deleteManyBody, req.body);
      const uia = await checkUia(req, FLOWS, `delete_devices:${r.userId}`, r.userId);
      if (!uia.done) return uia.reply;
      await authOf(req.hs).deleteDevices(r.userId, b.devices);
      finishUia(req.hs, uia.session);
      return json({});
    },
  },
];
