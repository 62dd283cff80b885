// CPU time a process (and every process it started) has used so far, from /proc (Linux).
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc's utime and stime (USER_HZ, 100 on Linux). */
const HZ = 100;

function stat(pid: number): { ppid: number; ticks: number } | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may hold spaces: the fields start after the last ')'.
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) };
  } catch {
    return null;
  }
}

/** Seconds of CPU (user + system, every thread) used by `pid` and its live descendants. */
export function cpuSeconds(pid: number): number {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    const p = Number(name);
    if (!Number.isInteger(p)) continue;
    const s = stat(p);
    if (!s) continue;
    const list = children.get(s.ppid) ?? [];
    list.push(p);
    children.set(s.ppid, list);
  }
  let ticks = 0;
  const todo = [pid];
  for (let i = 0; i < todo.length && i < 10_000; i++) {
    ticks += stat(todo[i]!)?.ticks ?? 0;
    todo.push(...(children.get(todo[i]!) ?? []));
  }
  return ticks / HZ;
}

/**
 * The local services' processes (the Kafka broker's JVM, PostgreSQL, Redis), found by their
 * command lines. They are shared: their CPU over a stretch includes whatever else used them.
 */
export function servicePids(): Record<'kafka' | 'postgres' | 'redis', number[]> {
  const found = { kafka: [] as number[], postgres: [] as number[], redis: [] as number[] };
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
    } catch {
      continue;
    }
    if (/\bjava\b.*kafka/i.test(cmd)) found.kafka.push(pid);
    else if (/^postgres\b|\/postgres\b/.test(cmd)) found.postgres.push(pid);
    else if (/^redis-server\b|\/redis-server\b/.test(cmd)) found.redis.push(pid);
  }
  return found;
}

/** CPU ticks used so far by each pid alone (not its descendants); a pid gone is left out. */
export function ticksOf(pids: number[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of pids) {
    const s = stat(pid);
    if (s) out.set(pid, s.ticks);
  }
  return out;
}

/** Seconds of CPU used between two `ticksOf` readings by the pids alive at both (a process that ended between them is not counted). */
export function secondsBetween(before: Map<number, number>, after: Map<number, number>): number {
  let ticks = 0;
  for (const [pid, t] of after) {
    const b = before.get(pid);
    if (b !== undefined && t >= b) ticks += t - b;
  }
  return ticks / HZ;
}

/** The machine's CPU ticks so far, busy and in all (/proc/stat's first line; idle and iowait are not busy). */
export function machineTicks(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - f[3]! - f[4]!, total };
}

/** The share of every core busy between two `machineTicks` readings (0–1). */
export function busyBetween(before: { busy: number; total: number }, after: { busy: number; total: number }): number {
  const total = after.total - before.total;
  return total > 0 ? (after.busy - before.busy) / total : 0;
}
