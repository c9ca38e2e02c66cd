/**
 * `WWW-Authenticate` parsing (RFC 9110 §11.6.1):
 *
 *   WWW-Authenticate = #challenge
 *   challenge        = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
 *   auth-param       = token BWS "=" BWS ( token / quoted-string )
 *
 * Commas separate both challenges and the params of one challenge, so the header is first split
 * into comma-separated items (quotes respected); an item that starts `token SP` or is a lone token
 * opens a new challenge, an item `token = value` is a param of the current one. The parser is
 * lenient because the header comes from a server we do not control: it never throws, and drops
 * what it cannot read rather than guessing.
 */
export interface Challenge {
  /** Lower-cased scheme, e.g. `bearer`, `basic`. */
  scheme: string;
  /** Lower-cased param names to their unquoted values. */
  params: Record<string, string>;
  token68?: string;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/;
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/;

function splitItems(header: string): string[] {
  const items: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < header.length; i++) {
    const ch = header[i]!;
    if (quoted) {
      cur += ch;
      if (ch === '\\' && i + 1 < header.length) cur += header[++i];
      else if (ch === '"') quoted = false;
    } else if (ch === '"') {
      quoted = true;
      cur += ch;
    } else if (ch === ',') {
      items.push(cur);
      cur = '';
    } else cur += ch;
  }
  items.push(cur);
  return items.map((s) => s.trim()).filter((s) => s !== '');
}

/** Parses `name = value` (value a token or quoted-string); undefined when `s` is not one. */
function parseParam(s: string): [string, string] | undefined {
  const m = TOKEN.exec(s);
  if (!m) return undefined;
  let rest = s.slice(m[0].length).trimStart();
  if (!rest.startsWith('=')) return undefined;
  rest = rest.slice(1).trimStart();
  if (rest.startsWith('"')) {
    let v = '';
    let i = 1;
    for (; i < rest.length && rest[i] !== '"'; i++) {
      if (rest[i] === '\\' && i + 1 < rest.length) i++;
      v += rest[i];
    }
    if (i >= rest.length) return undefined; // unterminated
    if (rest.slice(i + 1).trim() !== '') return undefined;
    return [m[0].toLowerCase(), v];
  }
  const t = TOKEN.exec(rest);
  if (!t || t[0].length !== rest.length) return undefined;
  return [m[0].toLowerCase(), t[0]];
}

/** Defined, not assigned: a param named `__proto__` is an entry like any other, not a prototype. */
function setParam(c: Challenge, [name, value]: [string, string]): void {
  Object.defineProperty(c.params, name, { value, enumerable: true, writable: true, configurable: true });
}

export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  let current: Challenge | undefined;
  for (const item of splitItems(header)) {
    const param = parseParam(item);
    if (param) {
      // A param item; `a=b` before any scheme belongs to nothing and is dropped.
      if (current && current.token68 === undefined) setParam(current, param);
      continue;
    }
    const m = TOKEN.exec(item);
    if (!m) continue;
    const rest = item.slice(m[0].length);
    if (rest !== '' && !/^[ \t]/.test(rest)) continue;
    current = { scheme: m[0].toLowerCase(), params: {} };
    out.push(current);
    const tail = rest.trim();
    if (tail === '') continue;
    const p = parseParam(tail);
    if (p) setParam(current, p);
    else if (TOKEN68.test(tail)) current.token68 = tail;
  }
  return out;
}

/** Writes challenges back as a header, every param value as a quoted-string. */
export function formatChallenges(challenges: Challenge[]): string {
  return challenges
    .map((c) => {
      if (c.token68 !== undefined) return `${c.scheme} ${c.token68}`;
      const ps = Object.entries(c.params).map(([k, v]) => `${k}="${v.replace(/["\\]/g, (x) => `\\${x}`)}"`);
      return ps.length ? `${c.scheme} ${ps.join(', ')}` : c.scheme;
    })
    .join(', ');
}
