import { createCommandClient } from '../actors/command-client.ts';
import { createRetention } from '../gateway/retention.ts';
import type { EventLog } from '../log/port.ts';
import type { Db } from '../stores/sql.ts';
import { createLogger } from '../telemetry/logger.ts';
import { createMetrics } from '../telemetry/metrics.ts';
import { plural } from './wording.ts';

/**
 * `gemello retention [--days <n>] [--dry-run]`: what the gateways' retention job would erase
 * now (dry run: listed, nothing erased), or one sweep of it done by hand through the
 * conversations' actor hosts. Exit 0 done, 3 some erasures wait for an actor host, 1 some failed.
 */
export async function retentionCommand(options: { days: number; dryRun: boolean }, deps: { log: EventLog; db: Db; out?: (l: string) => void }): Promise<number> {
  const out = deps.out ?? ((l: string) => console.log(l));
  if (options.days <= 0) {
    out('retention is off (GEMELLO_RETENTION_DAYS=0, or --days 0): nothing is erased');
    return 0;
  }
  // No feed here: answers are read from each conversation's partition of the log.
  const retention = createRetention({ days: options.days, db: deps.db, commands: createCommandClient({ log: deps.log }), metrics: createMetrics(), logger: createLogger('retention', true) });
  const { cutoff, conversations } = await retention.due();
  if (options.dryRun) {
    out(`${plural(conversations.length, 'conversation')} with no event since ${cutoff} (${options.days} days) would be erased${conversations.length === 500 ? ' (the first 500; a sweep takes 500 at a time)' : ''}`);
    for (const c of conversations) out(`  ${c.id}  last event ${c.lastEventAt}`);
    return 0;
  }
  const r = await retention.sweep();
  if (r.skipped) {
    out('a gateway is sweeping right now (it holds the retention lease); run this again in a moment');
    return 3;
  }
  out(`no event since ${r.cutoff}: ${plural(r.found, 'conversation')}, ${r.erased} erased, ${r.pending} waiting for their actor host, ${r.failed} failed`);
  return r.failed ? 1 : r.pending ? 3 : 0;
}
