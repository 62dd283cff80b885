// The single-writer appender when a write fails on our side but landed on the broker (its
// answer was lost, e.g. the broker died right after writing): nothing more is written before
// the host has read what landed (onDoubt), so the next write continues after it.
import { describe, expect, it } from 'vitest';
import { createAppender } from '../../actors/appender.ts';
import type { EventLog, LogRecord } from '../../log/port.ts';
import { tempFileLogs } from '../support/temp-log.ts';

const fileLog = tempFileLogs('appender');
const rec = (value: string) => ({ key: 'c1', value, headers: {} });
/** The appender of partition 0 of topic t, from `next`; nobody else writes there in these tests. */
const appenderOn = (log: EventLog, next: number, onDoubt: (from: number) => Promise<number>) =>
  createAppender({ log, topic: 't', partition: 0, next, onForeign: async () => { throw new Error('no foreign write here'); }, onDoubt });

describe('the appender after a write that failed', () => {
  it('that landed: onDoubt reads it before anything more is written, and the next write lands after it', async () => {
    const file = fileLog();
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
    const read: string[] = [];
    const appender = appenderOn(log, 0, (from) => file.read('t', 0, from, (rs: LogRecord[]) => void read.push(...rs.map((r) => r.value))));

    await expect(appender.append([rec('seq 1')])).rejects.toThrow('connection closed');
    await appender.settled();
    expect(read).toEqual(['seq 1']);
    expect(appender.inDoubt).toBe(false);
    expect(await appender.append([rec('seq 2')])).toBe(1);

    const values: string[] = [];
    await file.read('t', 0, 0, (rs: LogRecord[]) => void values.push(...rs.map((r) => r.value)));
    expect(values).toEqual(['seq 1', 'seq 2']);
    await file.close();
  });

  it('that did not land: the doubt is settled by reading nothing, and the next batch is written as usual', async () => {
    const file = fileLog();
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
    const doubts: number[] = [];
    const appender = appenderOn(log, 0, (from) => (doubts.push(from), file.read('t', 0, from, () => {})));
    await expect(appender.append([rec('a')])).rejects.toThrow('broker away');
    expect(await appender.append([rec('a again')])).toBe(0);
    expect(doubts).toEqual([0]);
    await file.close();
  });

  it('answered with an offset before its own: it fails, nothing is taken as written, and the next write lands where it should', async () => {
    const file = fileLog();
    await file.append('t', 0, [rec('seq 1')]);
    let duplicate = true;
    const log: EventLog = {
      ...file,
      async append(topic, partition, records) {
        // A client that sent the new batch with the landed one's idempotence sequence: the broker answers the old offset.
        if (duplicate) return (duplicate = false, 0);
        return file.append(topic, partition, records);
      },
    };
    const doubts: number[] = [];
    const appender = appenderOn(log, 1, (from) => (doubts.push(from), file.read('t', 0, from, () => {})));
    await expect(appender.append([rec('seq 2')])).rejects.toThrow('taken for a duplicate');
    await appender.settled();
    expect(doubts).toEqual([1]);
    expect(await appender.append([rec('seq 2 again')])).toBe(1);
    const values: string[] = [];
    await file.read('t', 0, 0, (rs: LogRecord[]) => void values.push(...rs.map((r) => r.value)));
    expect(values).toEqual(['seq 1', 'seq 2 again']);
    await file.close();
  });

  it('while the log cannot say what landed: nothing is written, and it is asked again', async () => {
    const file = fileLog();
    let down = true;
    const log: EventLog = {
      ...file,
      async append(topic, partition, records) {
        if (down) throw new Error('broker away');
        return file.append(topic, partition, records);
      },
    };
    let asked = 0;
    const appender = appenderOn(log, 0, async (from) => {
      asked++;
      if (down) throw new Error('broker away');
      return file.read('t', 0, from, () => {});
    });
    await expect(appender.append([rec('a')])).rejects.toThrow('broker away');
    await expect(appender.append([rec('b')])).rejects.toThrow('broker away');
    expect(appender.inDoubt).toBe(true);
    down = false;
    expect(await appender.append([rec('c')])).toBe(0);
    expect(asked).toBeGreaterThanOrEqual(2);
    await file.close();
  });
});
