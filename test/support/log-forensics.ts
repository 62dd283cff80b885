// What a test prints when a conversation's log is not clean (a seq twice, a gap): every record
// of the conversation with its offset, broker timestamp, seq, type and command, the copies of a
// doubled seq marked, and what each host logged around them (which host owned the partition
// when each copy was written: its "assigned", "released", "frozen" lines), so that a failure
// seen once can be explained without running it again.
import { decodeEvents } from '../../events/codec.ts';
import { partitionFor } from '../../log/partition.ts';
import type { EventLog, LogRecord } from '../../log/port.ts';
import { TOPICS } from '../../log/port.ts';

/** A process whose log lines start with an ISO time (an actor host, a gateway). */
export type Logged = { output(): string };

/** Lines of `out` whose leading ISO time lies in [from, to] (ms since the epoch). */
function linesBetween(out: string, from: number, to: number): string[] {
  return out.split('\n').filter((l) => {
    const t = Date.parse(l.slice(0, 24));
    return !Number.isNaN(t) && t >= from && t <= to;
  });
}

/**
 * Null when every conversation's events have seqs 1, 2, 3…; else a report of each one that
 * does not, with the hosts' (`hosts`: name → process) log lines from 3 s before its first
 * doubled or missing seq to 1 s after the last.
 */
export async function explainDirtyLogs(log: EventLog, conversations: string[], hosts: Record<string, Logged>): Promise<string | null> {
  const out: string[] = [];
  const byPartition = new Map<number, LogRecord[]>();
  for (const id of conversations) {
    const p = partitionFor(id, log.partitions);
    if (!byPartition.has(p)) {
      const records: LogRecord[] = [];
      await log.read(TOPICS.events, p, 0, async (rs) => void records.push(...rs));
      byPartition.set(p, records);
    }
    const records = byPartition.get(p)!.filter((r) => r.key === id);
    const events = await decodeEvents(records, null);
    const seqs = events.map((e) => e.seq);
    if (seqs.every((s, k) => s === k + 1)) continue;
    const count = new Map<number, number>();
    for (const s of seqs) count.set(s, (count.get(s) ?? 0) + 1);
    const ts = new Map(records.map((r) => [r.offset, r.timestamp]));
    const bad = events.filter((e, k) => count.get(e.seq)! > 1 || (k > 0 && e.seq !== events[k - 1]!.seq + 1 && count.get(e.seq) === 1));
    out.push(`conversation ${id} (partition ${p}): seqs ${seqs.join(',')}`);
    for (const e of events) {
      const mark = count.get(e.seq)! > 1 ? ' <== doubled' : '';
      out.push(`  offset ${e.position.offset} at ${new Date(ts.get(e.position.offset) ?? 0).toISOString()} seq ${e.seq} ${e.type} event ${e.eventId} cause ${e.causationId ?? '-'} occurred ${e.occurredAt}${mark}`);
    }
    const times = bad.map((e) => ts.get(e.position.offset) ?? 0);
    const from = Math.min(...times) - 3_000;
    const to = Math.max(...times) + 1_000;
    // The partition's other records around them: who else wrote there, and when.
    const around = byPartition.get(p)!.filter((r) => r.timestamp >= from && r.timestamp <= to);
    out.push(`  partition ${p} holds ${byPartition.get(p)!.length} records; ${around.length} between ${new Date(from).toISOString()} and ${new Date(to).toISOString()}`);
    for (const [name, h] of Object.entries(hosts)) {
      out.push(`  --- ${name}, ${new Date(from).toISOString()} .. ${new Date(to).toISOString()}:`);
      for (const l of linesBetween(h.output(), from, to)) out.push(`  ${name}| ${l}`);
    }
  }
  return out.length ? out.join('\n') : null;
}
