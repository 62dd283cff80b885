import { verify } from 'hono/jwt';

/** Who may connect: API keys (key → principal) and/or HS256 JWTs whose `sub` is the principal. */
export type AuthConfig = { apiKeys: Map<string, string>; jwtSecret: string | null };

/**
 * Parses `GEMELLO_API_KEYS` ("key1:alice,key2:bob"; a key without a name is its own principal).
 * A key given twice, or with an empty key or name, throws: which principal it meant is not known.
 */
export function parseApiKeys(text: string | undefined): Map<string, string> {
  const keys = new Map<string, string>();
  // The messages never show a key: they are logged.
  for (const [n, part] of (text ?? '').split(',').map((s) => s.trim()).filter(Boolean).entries()) {
    const i = part.indexOf(':');
    const [key, name] = i < 0 ? [part, part] : [part.slice(0, i).trim(), part.slice(i + 1).trim()];
    if (!key || !name) throw new Error(`entry ${n + 1} needs a key and a name (key:name)`);
    if (keys.has(key)) throw new Error(`a key is given twice (for ${keys.get(key)} and ${name}): each key names one principal`);
    keys.set(key, name);
  }
  return keys;
}

export const authEnabled = (a: AuthConfig | null): a is AuthConfig => Boolean(a && (a.apiKeys.size > 0 || a.jwtSecret));

/** What a gateway says at start when auth is off (null when it is on), on Node and on Deno alike. */
export function authOffNotice(a: AuthConfig | null, host: string): string | null {
  if (authEnabled(a)) return null;
  const local = host === '127.0.0.1' || host === 'localhost';
  return `no GEMELLO_API_KEYS or GEMELLO_JWT_SECRET: auth is off${local ? ', so only this machine can connect' : `; WARNING: listening on ${host} without auth`}`;
}

/** The token of a request: `Authorization: Bearer …`, then `?token=…` (browsers cannot set WebSocket headers). */
export function tokenOf(req: Request): string | null {
  return tokenFrom(req.headers.get('authorization'), new URL(req.url).search);
}

/** The same from a request's `Authorization` header and its query string (`?…`, or empty), as a runtime's raw request has them. */
export function tokenFrom(authorization: string | null | undefined, query: string): string | null {
  if (authorization?.toLowerCase().startsWith('bearer ')) return authorization.slice(7).trim();
  return new URLSearchParams(query).get('token');
}

/** The principal a token names, or null if it names none. */
export async function principalOf(auth: AuthConfig, token: string | null): Promise<string | null> {
  if (!token) return null;
  const byKey = auth.apiKeys.get(token);
  if (byKey) return byKey;
  if (auth.jwtSecret) {
    try {
      const payload = await verify(token, auth.jwtSecret, 'HS256');
      return typeof payload.sub === 'string' && payload.sub ? payload.sub : null;
    } catch {
      return null;
    }
  }
  return null;
}
