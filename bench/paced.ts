// Conversations at a pace for the benchmarks: N sockets that together offer a fixed number of
// prompts a second, each on a schedule of its own (open loop), so that the latency measured is
// the path's at that load, not the queue a closed loop builds in front of itself.
import { setTimeout as sleep } from 'node:timers/promises';
import { openConversations } from './conversations.ts';

const now = () => performance.now();

export type Paced = {
  concurrency: number;
  /** Prompts a second offered, over all sockets. */
  offered: number;
  /** ms from each prompt's scheduled send to its reply (a prompt sent late, behind its socket's last, counts from when it was due). */
  latencies: number[];
  completed: number;
  errors: number;
  seconds: number;
  /** Prompts due more than 5 ms before their socket's last reply came. */
  late: number;
};

/**
 * `concurrency` conversations (each warmed up with one prompt), then for `seconds` each sends a
 * prompt every `concurrency / rate` seconds, the sockets' schedules spread evenly over that
 * interval (`onStart` is called then, after the warm-up). A socket has one prompt in flight at most: a prompt due while the last is answered
 * goes when it is, and its latency counts from when it was due (no coordinated omission).
 */
export async function runPaced(url: string, concurrency: number, rate: number, seconds: number, onStart?: () => void): Promise<Paced> {
  const convs = await openConversations(url, concurrency);
  await Promise.all(convs.map((c) => c.ask(60_000).catch(() => {})));
  onStart?.();
  const everyMs = (concurrency / rate) * 1000;
  const latencies: number[] = [];
  let completed = 0;
  let errors = 0;
  let late = 0;
  const t0 = now();
  const end = t0 + seconds * 1000;
  await Promise.all(convs.map(async (c, i) => {
    let free = t0; // when this socket's last reply came
    for (let due = t0 + (i / concurrency) * everyMs; due < end; due += everyMs) {
      const wait = due - now();
      if (wait > 0) await sleep(wait);
      // Due while the last prompt was still unanswered: the path made it wait, so it counts from
      // when it was due. Otherwise from when it went (a timer of this client's that fired late is
      // not the path's).
      const from = free > due ? due : now();
      if (free > due + 5) late++;
      try {
        await c.ask();
        free = now();
        latencies.push(free - from);
        completed++;
      } catch {
        free = now();
        errors++;
      }
    }
  }));
  const elapsed = (now() - t0) / 1000;
  for (const c of convs) c.close();
  return { concurrency, offered: rate, latencies, completed, errors, seconds: elapsed, late };
}
