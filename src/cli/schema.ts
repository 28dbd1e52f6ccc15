/** Reads an op's zod input schema as CLI flags: kind, required, default, description, choices. */
import type { z } from "zod";

export type FieldKind = "string" | "number" | "boolean" | "enum" | "array" | "other";

export interface Field {
  key: string;
  flag: string;
  kind: FieldKind;
  /** For arrays: the element kind. */
  item?: FieldKind;
  required: boolean;
  default?: unknown;
  description?: string;
  choices?: string[];
}

export const kebab = (key: string): string => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

type AnyZod = z.ZodType & { def: any; description?: string };

function kindOf(s: AnyZod): { kind: FieldKind; choices?: string[]; item?: FieldKind } {
  const t = s.def.type as string;
  if (t === "string") return { kind: "string" };
  if (t === "number" || t === "int") return { kind: "number" };
  if (t === "boolean") return { kind: "boolean" };
  if (t === "enum")
    return { kind: "enum", choices: Object.values(s.def.entries as Record<string, string>).map(String) };
  if (t === "array") {
    const inner = kindOf(unwrap(s.def.element).schema);
    return { kind: "array", item: inner.kind, choices: inner.choices };
  }
  return { kind: "other" };
}

function unwrap(s: AnyZod): { schema: AnyZod; required: boolean; default?: unknown; description?: string } {
  let cur = s;
  let required = true;
  let dflt: unknown;
  let description = s.description;
  for (;;) {
    const t = cur.def.type as string;
    if (t === "optional" || t === "nullable") required = false;
    else if (t === "default" || t === "prefault") {
      required = false;
      dflt = typeof cur.def.defaultValue === "function" ? cur.def.defaultValue() : cur.def.defaultValue;
    } else break;
    cur = cur.def.innerType;
    description ??= cur.description;
  }
  return { schema: cur, required, default: dflt, description };
}

export function fieldsOf(input: z.ZodType): Field[] {
  const root = input as AnyZod;
  if (root.def.type !== "object") return [];
  const shape = root.def.shape as Record<string, AnyZod>;
  return Object.entries(shape).map(([key, s]) => {
    const u = unwrap(s);
    const k = kindOf(u.schema);
    return { key, flag: kebab(key), ...k, required: u.required, default: u.default, description: u.description };
  });
}
