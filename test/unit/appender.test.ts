// The single-writer appender when a write fails on our side but landed on the broker (its
// answer was lost, e.g. the broker died right after writing): writing the next batch as it
// stands would put the landed events' seqs in the log twice.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createAppender, LogMovedOn } from '../../actors/appender.ts';
import { createFileLog } from '../../log/file.ts';
import type { EventLog, LogRecord } from '../../log/port.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const rec = (value: string) => ({ key: 'c1', value, headers: {} });

describe('the appender after a write that failed but landed', () => {
  it('refuses the next batch, hands the landed records to onForeign, then writes where the log ends', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gemello-appender-'));
    dirs.push(dir);
    const file = createFileLog({ dir, partitions: 1 });
    let loseAnswer = true;
    const log: EventLog = {
      ...file,
      async append(topic, partition, records) {
        const base = await file.append(topic, partition, records);
        if (loseAnswer) {
          loseAnswer = false;
          throw new Error('connection closed before the answer');
        }
        return base;
      },
    };
    const foreign: Array<[number, number]> = [];
    const appender = createAppender({ log, topic: 't', partition: 0, next: 0, onForeign: async (from, to) => void foreign.push([from, to]) });

    await expect(appender.append([rec('seq 1')])).rejects.toThrow('connection closed');
    await expect(appender.append([rec('seq 1 again')])).rejects.toBeInstanceOf(LogMovedOn);
    expect(foreign).toEqual([[0, 1]]);
    expect(await appender.append([rec('seq 2')])).toBe(1);

    const values: string[] = [];
    await file.read('t', 0, 0, (rs: LogRecord[]) => void values.push(...rs.map((r) => r.value)));
    expect(values).toEqual(['seq 1', 'seq 2']);
    await file.close();
  });

  it('a write that failed and did not land: the next batch is written as usual', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gemello-appender-'));
    dirs.push(dir);
    const file = createFileLog({ dir, partitions: 1 });
    let fail = true;
    const log: EventLog = {
      ...file,
      async append(topic, partition, records) {
        if (fail) {
          fail = false;
          throw new Error('broker away');
        }
        return file.append(topic, partition, records);
      },
    };
    const appender = createAppender({ log, topic: 't', partition: 0, next: 0, onForeign: async () => { throw new Error('no foreign write here'); } });
    await expect(appender.append([rec('a')])).rejects.toThrow('broker away');
    expect(await appender.append([rec('a again')])).toBe(0);
    await file.close();
  });
});
