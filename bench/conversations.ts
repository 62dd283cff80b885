// Conversations over WebSocket for the benchmarks: one socket each with at most one prompt in
// flight (the next is sent when the reply came), and a level of N of them run for a time.
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';

const SEED = { digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };
const now = () => performance.now();
const log = (msg: string) => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);

type Frame = Record<string, unknown> & { type?: string };

/** One conversation: a socket with at most one prompt in flight, resolved by the frame that answers it (no polling). */
export async function openConversation(url: string) {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  let waiting: { requestId: string; resolve: (f: Frame) => void; reject: (e: Error) => void; timer: ReturnType<typeof setTimeout> } | null = null;
  ws.on('message', (data, binary) => {
    if (binary || !waiting) return;
    const f = JSON.parse(data.toString()) as Frame;
    if ((f.type === 'reply' || f.type === 'error') && f.requestId === waiting.requestId) {
      const w = waiting;
      waiting = null;
      clearTimeout(w.timer);
      if (f.type === 'reply') w.resolve(f);
      else w.reject(new Error(`${String(f.code)}: ${String(f.error)}`));
    }
  });
  ws.on('close', () => waiting?.reject(new Error('socket closed')));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let n = 0;
  const prefix = randomUUID().slice(0, 8);
  const conv = {
    conversationId: '',
    /** Wall-clock send and receive times by requestId, kept when `trace` is on. */
    trace: null as Map<string, { sent: number; received: number }> | null,
    /** Sends a prompt and resolves with the ms until its reply. */
    ask(ms = 30_000): Promise<number> {
      const requestId = `${prefix}-${n++}`;
      return new Promise<number>((resolve, reject) => {
        const t0 = now();
        const sent = Date.now();
        const timer = setTimeout(() => {
          waiting = null;
          reject(new Error(`no reply within ${ms} ms`));
        }, ms);
        waiting = {
          requestId,
          resolve: (f) => {
            const ms = now() - t0;
            conv.conversationId = String(f.conversationId);
            conv.trace?.set(requestId, { sent, received: Date.now() });
            resolve(ms);
          },
          reject,
          timer,
        };
        ws.send(JSON.stringify({ ...SEED, prompt: `question ${n} about the long term`, requestId }));
      });
    },
    close: () => ws.close(),
  };
  return conv;
}

/** `count` conversations, their sockets opened 50 at a time. */
export async function openConversations(url: string, count: number) {
  const convs: Array<Awaited<ReturnType<typeof openConversation>>> = [];
  for (let i = 0; i < count; i += 50) {
    convs.push(...(await Promise.all(Array.from({ length: Math.min(50, count - i) }, () => openConversation(url)))));
  }
  return convs;
}

export type Level = {
  concurrency: number;
  latencies: number[];
  completed: number;
  errors: number;
  seconds: number;
  /** The first conversation's prompts with their wall-clock send and receive times. */
  traced: { conversationId: string; trace: Map<string, { sent: number; received: number }> };
};

/**
 * `concurrency` sockets, each sending its next prompt when the reply came, until the count or
 * the time is reached. `onStart` is called when the clock starts (after the warm-up prompts).
 */
export async function runLevel(url: string, concurrency: number, perSocket: number, seconds: number, warmup: number, onStart?: () => void): Promise<Level> {
  const convs = await openConversations(url, concurrency);
  // Every conversation is created (and its actor active) before the clock starts.
  let warmupErrors = 0;
  await Promise.all(convs.map(async (c) => {
    for (let k = 0; k < warmup; k++) await c.ask(60_000).catch(() => warmupErrors++);
  }));
  if (warmupErrors) log(`  ${warmupErrors} warm-up prompts failed`);
  const trace = new Map<string, { sent: number; received: number }>();
  convs[0]!.trace = trace;
  const latencies: number[] = [];
  let completed = 0;
  let errors = 0;
  onStart?.();
  const t0 = now();
  const deadline = t0 + seconds * 1000;
  const progress = setInterval(() => log(`  ${concurrency} conversations: ${completed} replies, ${errors} errors`), 5_000);
  try {
    await Promise.all(convs.map(async (c) => {
      for (let k = 0; k < perSocket && now() < deadline; k++) {
        try {
          latencies.push(await c.ask());
          completed++;
        } catch {
          errors++;
        }
      }
    }));
  } finally {
    clearInterval(progress);
  }
  const elapsed = (now() - t0) / 1000;
  for (const c of convs) c.close();
  return { concurrency, latencies, completed, errors, seconds: elapsed, traced: { conversationId: convs[0]!.conversationId, trace } };
}
