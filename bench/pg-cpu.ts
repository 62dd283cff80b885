// CPU time of the PostgreSQL backends serving one application_name, read from /proc: on a
// shared machine a run's throughput is whatever the others leave it, its CPU per event is not.
import { readFileSync } from 'node:fs';
import type { Db } from '../stores/sql.ts';

const TICK_MS = 10; // CLK_TCK 100 on Linux

/** utime + stime of a process, ms (0 once it is gone or unreadable). */
function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * TICK_MS;
  } catch {
    return 0;
  }
}

/** A meter of the backends named `app`: `read()` gives their CPU ms since `start()` (backends that came since count from 0). */
export function pgCpu(db: Db, app: string) {
  let before = new Map<number, number>();
  const pids = async () => (await db.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE application_name = $1', [app])).map((r) => Number(r.pid));
  return {
    async start() {
      before = new Map((await pids()).map((p) => [p, cpuMs(p)]));
    },
    async read(): Promise<number> {
      let ms = 0;
      for (const p of await pids()) ms += cpuMs(p) - (before.get(p) ?? 0);
      return ms;
    },
  };
}
