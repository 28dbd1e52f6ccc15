/**
 * What a URL preview reads of an HTML page (spec "URL previews": OpenGraph, https://ogp.me/): every `og:*` meta
 * property, else the `<title>` and the `description` meta for og:title and og:description. A tolerant scan of the
 * tags, not a DOM: a page is untrusted input of any shape, and only these few tags matter. Values are entity-decoded,
 * whitespace-collapsed and capped in length and number.
 */

const MAX_VALUE = 1000;
const MAX_PROPS = 50;

/** The named references pages use most (the full HTML list has 2,000+; others stay as written). */
const NAMED: Record<string, string> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
  nbsp: "\u00a0",
  copy: "©",
  reg: "®",
  trade: "™",
  hellip: "…",
  mdash: "—",
  ndash: "–",
  lsquo: "‘",
  rsquo: "’",
  ldquo: "“",
  rdquo: "”",
  laquo: "«",
  raquo: "»",
  middot: "·",
  bull: "•",
  euro: "€",
  pound: "£",
  aacute: "á",
  agrave: "à",
  acirc: "â",
  auml: "ä",
  ccedil: "ç",
  eacute: "é",
  egrave: "è",
  ecirc: "ê",
  iacute: "í",
  oacute: "ó",
  ouml: "ö",
  uacute: "ú",
  uuml: "ü",
  ntilde: "ñ",
  szlig: "ß",
};

export function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-f]{1,6}|#\d{1,7}|[a-z]{2,6});/gi, (m, e: string) => {
    if (e[0] === "#") {
      const cp = e[1] === "x" || e[1] === "X" ? Number.parseInt(e.slice(2), 16) : Number.parseInt(e.slice(1), 10);
      return cp > 0 && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff) ? String.fromCodePoint(cp) : m;
    }
    return NAMED[e] ?? m;
  });
}

const clean = (s: string) => decodeEntities(s).replace(/\s+/g, " ").trim().slice(0, MAX_VALUE);

/** The attributes of one start tag's text (after its name). */
function attributes(tag: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of tag.matchAll(/([^\s=/>"']+)\s*(?:=\s*(?:"([^"]*)"|'([^']*)'|([^\s>"']+)))?/g)) {
    const name = m[1].toLowerCase();
    if (!out.has(name)) out.set(name, m[2] ?? m[3] ?? m[4] ?? "");
  }
  return out;
}

/** The charset a page declares in a meta tag, if any (the HTTP header's is checked first by the caller). */
export function metaCharset(head: string): string | null {
  const m = /<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_-]+)/i.exec(head);
  return m ? m[1].toLowerCase() : null;
}

/** OpenGraph properties of a page, with the <title> / description fallbacks. */
export function pageMeta(html: string): Record<string, string> {
  // Comments and scripts may hold tag-like text that is not markup.
  const text = html.replace(/<!--[\s\S]*?(-->|$)/g, "").replace(/<(script|style)\b[\s\S]*?(<\/\1\s*>|$)/gi, "");
  const og: Record<string, string> = {};
  let description: string | null = null;
  let count = 0;
  for (const m of text.matchAll(/<meta\b([^>]*)>/gi)) {
    const a = attributes(m[1]);
    const key = (a.get("property") ?? a.get("name") ?? "").toLowerCase();
    const content = a.get("content");
    if (content === undefined) continue;
    if (key.startsWith("og:") && key.length <= 100 && !(key in og) && count < MAX_PROPS) {
      og[key] = clean(content);
      count++;
    } else if (key === "description" && description === null) description = clean(content);
  }
  if (!og["og:title"]) {
    const t = /<title\b[^>]*>([\s\S]*?)<\/title\s*>/i.exec(text);
    if (t && clean(t[1])) og["og:title"] = clean(t[1]);
  }
  if (!og["og:description"] && description) og["og:description"] = description;
  return og;
}
