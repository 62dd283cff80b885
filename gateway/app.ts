import { Hono } from 'hono';
import type { MiddlewareHandler } from 'hono';
import type { UpgradeWebSocket } from 'hono/ws';
import type { TwinCatalog } from '../actors/twins.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import { authEnabled, principalOf, tokenFrom, tokenOf } from './auth.ts';
import type { AuthConfig } from './auth.ts';
import type { Eraser } from './erase.ts';
import { PAGE_HTML } from './page.ts';
import { audioIdProblem, conversationIdProblem, MAX_SEQ, pastPayloadLimit } from './protocol.ts';
import { createSession, sessionMetrics } from './session.ts';
import type { Session, SessionDeps, SocketPort } from './session.ts';

/** The read side the HTTP API serves (absent: the routes answer 503). */
export type ReadApi = {
  listTwins(): Promise<Array<{ id: string }>>;
  getConversation(id: string): Promise<{ userId?: string | null; user_id?: string | null } & Record<string, unknown> | null>;
  getEvents(id: string, afterSeq?: number): Promise<unknown[]>;
  getAudio(id: string): Promise<{ bytes: Uint8Array; contentType: string } | null>;
};

export type AppDeps = SessionDeps & {
  catalog: TwinCatalog;
  readApi: ReadApi | null;
  metrics: Metrics;
  auth: AuthConfig | null;
  /** Erases a conversation through its actor host (absent: DELETE answers 503). */
  erase?: Eraser | null;
  /** Each backend's health: null when it answers, else why not. */
  checks: () => Promise<Record<string, string | null>>;
  /** Close sockets silent for this long. */
  idleTimeoutMs?: number;
  /** The caller's kept utterances (GEMELLO_KEEP_VOICE), opened with their conversation's key; absent: none are kept. */
  voiceClips?: { read(conversationId: string, audioId: string): Promise<{ bytes: Uint8Array; contentType: string } | null> } | null;
};

/** Who opens a socket: a principal (null with auth off), or nobody when auth is on and the token is missing or wrong. */
export type Who = { ok: true; principal: string | null } | { ok: false };

/**
 * One open socket. Its session (the protocol's state: its maps, rate limit and closures) is
 * made when its first frame comes, so a socket that only waits costs little beyond itself.
 */
export class OpenSocket {
  readonly port: SocketPort;
  readonly principal: string | null;
  session: Session | null = null;
  /** When it opened: its last activity until it has a session, which then keeps that. */
  readonly opened = Date.now();
  constructor(port: SocketPort, principal: string | null) {
    this.port = port;
    this.principal = principal;
  }
}

/** `afterSeq` of the events route: absent is 0; a whole number up to MAX_SEQ; anything else null. */
const afterSeqOf = (q: string | undefined): number | null => (q === undefined ? 0 : /^\d{1,10}$/.test(q) && Number(q) <= MAX_SEQ ? Number(q) : null);

/**
 * The gateway: HTTP routes and the WebSocket protocol. With `upgradeWebSocket` (Deno's,
 * say) the app answers upgrades at / and /ws itself; without it the runtime upgrades them
 * (Node: runtime/node.ts, with `ws`), hands each socket to `open` and its frames to `text`
 * and `binary`, and the app answers those paths only as HTTP (426, the chat page).
 */
export function createApp(deps: AppDeps, upgradeWebSocket?: UpgradeWebSocket | null) {
  const app = new Hono();
  const m = sessionMetrics(deps.metrics);
  const sockets = new Set<OpenSocket>();
  const socketsOpen = deps.metrics.gauge('gemello_ws_sockets_open', 'WebSockets open');
  deps.metrics.onCollect(() => socketsOpen.set(sockets.size));
  const idleTimeoutMs = deps.idleTimeoutMs ?? 10 * 60_000;

  const sweep = setInterval(() => {
    const now = Date.now();
    for (const s of sockets) if ((s.session ? s.session.idleFor(now) : now - s.opened) > idleTimeoutMs) s.port.close(1000, 'idle timeout');
  }, Math.min(30_000, idleTimeoutMs));
  (sweep as { unref?: () => void }).unref?.();

  const OPEN: Who = { ok: true, principal: null };
  const whoHas = async (token: string | null): Promise<Who> => {
    if (!authEnabled(deps.auth)) return OPEN;
    const p = await principalOf(deps.auth, token);
    return p ? { ok: true, principal: p } : { ok: false };
  };
  const principal = (req: Request) => whoHas(authEnabled(deps.auth) ? tokenOf(req) : null);

  /** Who a socket's upgrade request names, by its `Authorization` header and its query string. */
  const authorize = (authorization: string | null | undefined, query: string) => whoHas(authEnabled(deps.auth) ? tokenFrom(authorization, query) : null);

  /** A socket just opened by `who`, or null when it is refused: told with an error frame and closed with 1008. */
  const open = (port: SocketPort, who: Who): OpenSocket | null => {
    if (!who.ok) {
      m.errors.inc({ code: 'unauthorized' });
      port.send(JSON.stringify({ type: 'error', code: 'unauthorized', error: 'a valid token is required' }));
      port.close(1008, 'unauthorized');
      return null;
    }
    const s = new OpenSocket(port, who.principal);
    sockets.add(s);
    return s;
  };
  const sessionOf = (s: OpenSocket) => (s.session ??= createSession(deps, s.port, s.principal, m));
  /** How long a stopping gateway waits for the frames its sockets sent before they closed (a prompt's append takes milliseconds). */
  const SETTLE_MS = 3_000;
  /** Text frames being handled: a prompt among them is on its way to the log. */
  const handling = new Set<Promise<void>>();
  /** A text frame from the socket (never throws). */
  const text = (s: OpenSocket, data: string): void => {
    if (!sockets.has(s)) return;
    const done = sessionOf(s).onText(data);
    handling.add(done);
    void done.finally(() => handling.delete(done));
  };
  /**
   * Waits (at most `ms`) for the frames being handled to be done. A gateway shutting down
   * closes its sockets first; a prompt that came in before the client heard it must reach the
   * log before the log is closed, or nothing would ever answer it (its socket is gone, and a
   * resume elsewhere would not find it).
   */
  const settle = async (ms = SETTLE_MS): Promise<void> => {
    const until = Date.now() + ms;
    while (handling.size && Date.now() < until) {
      await Promise.race([Promise.allSettled([...handling]), new Promise((r) => setTimeout(r, Math.max(0, until - Date.now())))]);
    }
  };
  /** A binary frame from the socket: audio of an utterance (audio.start … audio.end), else refused with an error frame. */
  const binary = (s: OpenSocket, bytes?: Uint8Array): void => {
    if (sockets.has(s)) sessionOf(s).onBinary(bytes);
  };
  const closed = (s: OpenSocket): void => {
    s.session?.onClose();
    sockets.delete(s);
  };

  app.onError((err, c) => {
    deps.logger.error(`${c.req.method} ${c.req.path}: ${err.message}`);
    return c.json({ error: 'internal error', code: 'internal' }, 500);
  });

  app.get('/health', (c) => c.json({ status: 'ok' }));
  // The chat page has no icon: a browser asking for one gets "nothing" rather than a 404 in its console.
  app.get('/favicon.ico', (c) => c.body(null, 204));
  app.get('/ready', async (c) => {
    const checks = await deps.checks();
    const failing = Object.entries(checks).filter(([, v]) => v !== null);
    const body = { status: failing.length ? 'unavailable' : 'ready', backends: Object.fromEntries(Object.entries(checks).map(([k, v]) => [k, v ?? 'ok'])) };
    return c.json(body, failing.length ? 503 : 200);
  });
  app.get('/metrics', (c) => c.text(deps.metrics.render(), 200, { 'content-type': 'text/plain; version=0.0.4' }));

  // ---- read API ----
  app.use('/api/*', async (c, next) => {
    const who = await principal(c.req.raw);
    if (!who.ok) return c.json({ error: 'a valid token is required', code: 'unauthorized' }, 401);
    c.set('principal' as never, who.principal as never);
    // An id whose percent-escapes are not UTF-8 ("%FF") names nothing: read as it stands it would alias the id "%FF" ("%25FF").
    if (!decodable(new URL(c.req.url).pathname)) return c.json({ error: 'the URL holds a percent-escape that is not UTF-8', code: 'invalid_request' }, 400);
    if (!deps.readApi) return c.json({ error: 'the read model is not configured', code: 'unavailable' }, 503);
    await next();
  });
  // A conversation id no conversation can have is the client's mistake, answered before any backend is asked.
  const checkId: MiddlewareHandler = async (c, next) => {
    const problem = conversationIdProblem(c.req.param('id')!);
    if (problem) return c.json({ error: problem, code: 'invalid_request' }, 400);
    await next();
  };
  app.use('/api/conversations/:id', checkId);
  app.use('/api/conversations/:id/*', checkId);
  const checkAudioId = (param: string): MiddlewareHandler => async (c, next) => {
    const problem = audioIdProblem(c.req.param(param)!);
    if (problem) return c.json({ error: problem, code: 'invalid_request' }, 400);
    await next();
  };
  app.use('/api/audio/:id', checkAudioId('id'));
  app.use('/api/conversations/:id/voice/:audioId', checkAudioId('audioId'));
  const owned = async (c: { get(k: never): unknown }, id: string) => {
    const conv = await deps.readApi!.getConversation(id);
    if (!conv) return { status: 404 as const };
    const me = c.get('principal' as never) as string | null;
    const owner = (conv.userId ?? conv.user_id ?? null) as string | null;
    if (authEnabled(deps.auth) && owner !== null && owner !== me) return { status: 403 as const };
    return { status: 200 as const, conv };
  };
  // With the data each twin collects (from the catalog: the read model keeps no fields), so a client can offer what a confirm takes.
  app.get('/api/twins', async (c) => c.json((await deps.readApi!.listTwins()).map((t) => ({ ...t, fields: deps.catalog.find(t.id, undefined)?.fields ?? [] }))));
  app.get('/api/conversations/:id', async (c) => {
    const r = await owned(c, c.req.param('id'));
    if (r.status === 404) return c.json({ error: 'no such conversation', code: 'conversation_not_found' }, 404);
    if (r.status === 403) return c.json({ error: 'the conversation belongs to someone else', code: 'forbidden' }, 403);
    return c.json(r.conv);
  });
  app.get('/api/conversations/:id/events', async (c) => {
    const r = await owned(c, c.req.param('id'));
    if (r.status === 404) return c.json({ error: 'no such conversation', code: 'conversation_not_found' }, 404);
    if (r.status === 403) return c.json({ error: 'the conversation belongs to someone else', code: 'forbidden' }, 403);
    const after = afterSeqOf(c.req.query('afterSeq'));
    if (after === null) return c.json({ error: `afterSeq must be a whole number from 0 to ${MAX_SEQ}`, code: 'invalid_request' }, 400);
    return c.json(await deps.readApi!.getEvents(c.req.param('id'), after));
  });
  app.delete('/api/conversations/:id', async (c) => {
    const id = c.req.param('id');
    if (!deps.erase) return c.json({ error: 'erasure needs the gateway role with the event feed', code: 'unavailable' }, 503);
    // The read model answers who owns it; a conversation it has not seen yet is the actor host's to judge.
    const r = await owned(c, id);
    if (r.status === 403) return c.json({ error: 'the conversation belongs to someone else', code: 'forbidden' }, 403);
    const outcome = await deps.erase(id, c.get('principal' as never) as string | null);
    if (outcome.status === 'rejected') {
      const status = outcome.code === 'conversation_not_found' ? 404 : outcome.code === 'forbidden' ? 403 : 409;
      return c.json({ error: outcome.message, code: outcome.code }, status);
    }
    if (outcome.status === 'pending') {
      return c.json({
        status: 'accepted',
        conversationId: id,
        commandId: outcome.commandId,
        what: 'The erasure is in the log; the conversation\'s actor host carries it out when it handles the command: it records ConversationErased, destroys the conversation\'s data key (its prompts, replies and confirmed data in the log become unreadable) and deletes its snapshot, and the read model drops their rows.',
      }, 202);
    }
    const e = outcome.erasure;
    return c.json({
      status: 'erased',
      conversationId: id,
      seq: e.seq,
      erasedAt: e.erasedAt,
      erasedBefore: !e.now,
      erased: { prompts: e.prompts, replies: e.replies, confirmedFields: e.confirmedFields },
      keyDestroyed: e.keyDestroyed,
      snapshotDeleted: true,
      readModel: outcome.readModel,
      what: `The conversation's prompts, replies and confirmed data can no longer be read: its data key is destroyed, so their copies in the log cannot be decrypted; its snapshot is deleted; ${outcome.readModel === 'scrubbed' ? 'its messages, confirmed data and event content are gone from the read model' : 'the read model drops its messages, confirmed data and event content when the projection reaches seq ' + e.seq}. The erasure is recorded as the event ConversationErased (seq ${e.seq}). Further prompts to it get the error code conversation_erased.`,
    }, 200);
  });
  // The caller's own voice, kept sealed: only for whoever may read the conversation, never cached.
  app.get('/api/conversations/:id/voice/:audioId', async (c) => {
    const r = await owned(c, c.req.param('id'));
    if (r.status === 403) return c.json({ error: 'the conversation belongs to someone else', code: 'forbidden' }, 403);
    const clip = r.status === 200 && deps.voiceClips ? await deps.voiceClips.read(c.req.param('id'), c.req.param('audioId')) : null;
    if (!clip) return c.json({ error: deps.voiceClips ? 'no such kept utterance (erased, or never kept)' : 'the caller\'s audio is not kept (GEMELLO_KEEP_VOICE is off)', code: 'voice_not_found' }, 404);
    return c.body(clip.bytes as Uint8Array<ArrayBuffer>, 200, { 'content-type': clip.contentType, 'cache-control': 'private, no-store' });
  });
  app.get('/api/audio/:id', async (c) => {
    // A sentence's clip just synthesised is on the reply streams before the audio cache has written it.
    const audio = (await deps.feed.clip(c.req.param('id'))) ?? (await deps.readApi!.getAudio(c.req.param('id')));
    if (!audio) return c.json({ error: 'no such audio', code: 'audio_not_found' }, 404);
    return c.body(audio.bytes as Uint8Array<ArrayBuffer>, 200, { 'content-type': audio.contentType, 'cache-control': 'public, max-age=86400, immutable' });
  });

  // ---- WebSocket at / and /ws; a browser asking / for HTML gets the chat page ----
  if (upgradeWebSocket) {
    const ws = upgradeWebSocket(async (c) => {
      const who = await authorize(c.req.header('authorization'), new URL(c.req.url).search);
      let socket: OpenSocket | null = null;
      return {
        onOpen(_evt, ctx) {
          // Audio frames arrive as ArrayBuffers, in order (a Blob would need an await per frame).
          const raw = ctx.raw as { binaryType?: string } | undefined;
          if (raw && 'binaryType' in raw) raw.binaryType = 'arraybuffer';
          socket = open({
            send: (text) => ctx.send(text),
            buffered: () => (ctx.raw as { bufferedAmount?: number } | undefined)?.bufferedAmount ?? 0,
            close: (code, reason) => ctx.close(code, reason),
          }, who);
        },
        onMessage(evt, ctx) {
          if (!socket) return;
          // Deno's sockets take a frame of any size: one past the limit closes the socket, as ws does on Node.
          const size = typeof evt.data === 'string' ? evt.data : evt.data instanceof ArrayBuffer || ArrayBuffer.isView(evt.data) ? evt.data.byteLength : 0;
          if (pastPayloadLimit(size)) return ctx.close(1009, 'frame too large');
          if (typeof evt.data === 'string') text(socket, evt.data);
          else if (evt.data instanceof ArrayBuffer) binary(socket, new Uint8Array(evt.data));
          else if (ArrayBuffer.isView(evt.data)) binary(socket, new Uint8Array(evt.data.buffer, evt.data.byteOffset, evt.data.byteLength));
          else binary(socket); // a Blob: Deno's sockets are set to ArrayBuffer below, so none should come
        },
        onClose() {
          if (socket) closed(socket);
        },
        onError() {},
      };
    });
    app.get('/ws', ws, (c) => c.text('this endpoint speaks WebSocket', 426));
    app.get('/', ws, (c) => c.html(PAGE_HTML));
  } else {
    app.get('/ws', (c) => c.text('this endpoint speaks WebSocket', 426));
    app.get('/', (c) => c.html(PAGE_HTML));
  }

  /** A gateway shutting down: every socket is closed with 1001 (its client reconnects to another replica). */
  const closeSockets = (): void => {
    for (const s of sockets) s.port.close(1001, 'server shutting down');
  };

  return { app, close: () => clearInterval(sweep), closeSockets, settle, sockets: () => sockets.size, authorize, open, text, binary, closed };
}

/** Whether every percent-escape of a URL path decodes to UTF-8. */
function decodable(path: string): boolean {
  try {
    decodeURIComponent(path);
    return true;
  } catch {
    return false;
  }
}
