/** Spec section "Push Rules: API" (pushrules.yaml); rules are stored in account data m.push_rules. */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { json, type MatrixRequest, type Route } from "../http/types.ts";
import {
  findRule,
  getRuleset,
  type PushRule,
  RULE_KINDS,
  type RuleKind,
  updateRuleset,
} from "../service/push-rules.ts";
import { parseBody } from "../validate.ts";

const RULE = "/_matrix/client/v3/pushrules/global/{kind}/{ruleId}";

function kindParam(req: MatrixRequest): RuleKind {
  const k = req.params.kind;
  if (!(RULE_KINDS as readonly string[]).includes(k))
    throw new AmiError("M_INVALID_PARAM", `Unknown push rule kind '${k}'`);
  return k as RuleKind;
}

const action = z.union([z.string(), z.record(z.string(), z.unknown())]);
const condition = z.object({ kind: z.string() }).loose();
const ruleBody = z.object({
  actions: z.array(action),
  conditions: z.array(condition).optional(),
  pattern: z.string().optional(),
});

/** Reads a rule (default or user-defined) and applies `fn` to the stored copy; M_NOT_FOUND if it does not exist. */
async function changeRule(req: MatrixRequest, fn: (r: PushRule) => void): Promise<void> {
  const kind = kindParam(req);
  const userId = req.requester!.userId;
  findRule(await getRuleset(req.hs, userId), kind, req.params.ruleId);
  await updateRuleset(req.hs, userId, (rules) => fn(findRule(rules, kind, req.params.ruleId)));
}

export const routes: Route[] = [
  /** GET /_matrix/client/v3/pushrules/ */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/pushrules/", "/_matrix/client/v3/pushrules"],
    auth: "required",
    async handler(req) {
      return json({ global: await getRuleset(req.hs, req.requester!.userId) });
    },
  },
  /** GET /_matrix/client/v3/pushrules/global/ */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/pushrules/global/", "/_matrix/client/v3/pushrules/global"],
    auth: "required",
    async handler(req) {
      return json(await getRuleset(req.hs, req.requester!.userId));
    },
  },
  /** GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId} */
  {
    method: "GET",
    paths: [RULE],
    auth: "required",
    async handler(req) {
      return json(findRule(await getRuleset(req.hs, req.requester!.userId), kindParam(req), req.params.ruleId));
    },
  },
  /** DELETE /_matrix/client/v3/pushrules/global/{kind}/{ruleId} */
  {
    method: "DELETE",
    paths: [RULE],
    auth: "required",
    async handler(req) {
      const kind = kindParam(req);
      const { ruleId } = req.params;
      const userId = req.requester!.userId;
      const rule = findRule(await getRuleset(req.hs, userId), kind, ruleId);
      if (rule.default) throw new AmiError("M_INVALID_PARAM", "Server-default rules cannot be deleted");
      await updateRuleset(req.hs, userId, (rules) => {
        rules[kind] = rules[kind].filter((r) => r.rule_id !== ruleId);
      });
      return json({});
    },
  },
  /** PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId} */
  {
    method: "PUT",
    paths: [RULE],
    auth: "required",
    rateLimit: true,
    async handler(req) {
      const kind = kindParam(req);
      const { ruleId } = req.params;
      if (ruleId.startsWith("."))
        throw new AmiError("M_INVALID_PARAM", "Rule IDs starting with '.' are reserved for server-default rules");
      if (/[/\\]/.test(ruleId) || ruleId === "")
        throw new AmiError("M_INVALID_PARAM", "Rule IDs must not contain '/' or '\\'");
      const b = parseBody(ruleBody, req.body);
      const rule: PushRule = { rule_id: ruleId, default: false, enabled: true, actions: b.actions };
      if (kind === "override" || kind === "underride") rule.conditions = b.conditions ?? [];
      if (kind === "content") {
        if (b.pattern === undefined) throw new AmiError("M_MISSING_PARAM", "'pattern' is required for content rules");
        rule.pattern = b.pattern;
      }
      const before = req.query.get("before");
      const after = req.query.get("after");
      const userId = req.requester!.userId;
      const current = await getRuleset(req.hs, userId);
      for (const rel of [before, after]) {
        if (rel === null) continue;
        const r = current[kind].find((x) => x.rule_id === rel);
        if (!r) throw new AmiError("M_NOT_FOUND", `Unknown rule '${rel}'`);
        if (r.default) throw new AmiError("M_INVALID_PARAM", "Rules cannot be placed relative to server-default rules");
      }
      await updateRuleset(req.hs, userId, (rules) => {
        const list = rules[kind];
        const existing = list.findIndex((r) => r.rule_id === ruleId);
        if (existing >= 0) {
          // Updating keeps the rule's enabled state and position unless a new position is asked for.
          rule.enabled = list[existing].enabled;
          if (before === null && after === null) {
            list[existing] = rule;
            return;
          }
          list.splice(existing, 1);
        }
        const anchor = before ?? after;
        let at = anchor === null ? -1 : list.findIndex((r) => r.rule_id === anchor);
        if (at >= 0 && after !== null && before === null) at++;
        if (at < 0) {
          // New rules go first among the user's rules (after the master switch for overrides).
          at = kind === "override" && list[0]?.rule_id === ".m.rule.master" ? 1 : 0;
        }
        list.splice(at, 0, rule);
      });
      return json({});
    },
  },
  /** GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled */
  {
    method: "GET",
    paths: [`${RULE}/enabled`],
    auth: "required",
    async handler(req) {
      return json({
        enabled: findRule(await getRuleset(req.hs, req.requester!.userId), kindParam(req), req.params.ruleId).enabled,
      });
    },
  },
  /** PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled */
  {
    method: "PUT",
    paths: [`${RULE}/enabled`],
    auth: "required",
    async handler(req) {
      const { enabled } = parseBody(z.object({ enabled: z.boolean() }), req.body);
      await changeRule(req, (r) => {
        r.enabled = enabled;
      });
      return json({});
    },
  },
  /** GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions */
  {
    method: "GET",
    paths: [`${RULE}/actions`],
    auth: "required",
    async handler(req) {
      return json({
        actions: findRule(await getRuleset(req.hs, req.requester!.userId), kindParam(req), req.params.ruleId).actions,
      });
    },
  },
  /** PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions */
  {
    method: "PUT",
    paths: [`${RULE}/actions`],
    auth: "required",
    async handler(req) {
      const { actions } = parseBody(z.object({ actions: z.array(action) }), req.body);
      await changeRule(req, (r) => {
        r.actions = actions;
      });
      return json({});
    },
  },
];
