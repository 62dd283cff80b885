// The producer's append queue (one request in flight): what arrives meanwhile goes out together
// in the next request, and so does what the answer's own continuations append (a writer that
// sends its next write when its last is answered).
import { describe, expect, it } from 'vitest';
import { createAppendQueue } from '../../log/append-queue.ts';
import type { AppendRequest } from '../../log/append-queue.ts';

const rec = (value: string) => ({ key: 'c', value, headers: {} });

/** A queue whose requests are answered by the test: each request's appends as `topic/partition:value,…`. */
function queueUnderTest(answerAtOnce = false) {
  const requests: string[][] = [];
  const answers: Array<() => void> = [];
  const ends = new Map<string, number>();
  const queue = createAppendQueue((request: AppendRequest) => {
    requests.push(request.map((a) => `${a.topic}/${a.partition}:${a.records.map((r) => r.value).join(',')}`));
    return new Promise((resolve) => (answerAtOnce ? (f: () => void) => f() : (f: () => void) => answers.push(f))(() => {
      const bases = new Map<string, number>();
      for (const a of request) {
        const k = `${a.topic}/${a.partition}`;
        if (!bases.has(k)) bases.set(k, ends.get(k) ?? 0);
        ends.set(k, (ends.get(k) ?? 0) + a.records.length);
      }
      resolve(bases);
    }));
  });
  const answerNext = () => answers.shift()!();
  const sent = async (n: number) => {
    while (requests.length < n) await new Promise((r) => setImmediate(r));
  };
  return { queue, requests, answerNext, sent };
}

describe('the append queue', () => {
  it('sends what the answer of a request makes its callers append in the next request, with what waited', async () => {
    const { queue, requests, answerNext, sent } = queueUnderTest();
    // A writer of partition 0 with one write in flight: its next goes when its last is answered.
    const writer = queue.append('t', 0, [rec('a1')]).then((at) => queue.append('t', 0, [rec('a2')]).then((next) => [at, next]));
    await sent(1);
    const other = queue.append('t', 1, [rec('b1')]);
    answerNext();
    await sent(2);
    expect(requests[1]).toEqual(['t/1:b1', 't/0:a2']);
    answerNext();
    expect(await other).toBe(0);
    expect(await writer).toEqual([0, 1]);
    expect(requests).toHaveLength(2);
  });

  it('sends the appends of one turn together, each partition\'s in call order, and their offsets follow on', async () => {
    const { queue, requests } = queueUnderTest(true);
    const offsets = [queue.append('t', 0, [rec('x1'), rec('x2')]), queue.append('t', 3, [rec('y1')]), queue.append('t', 0, [rec('x3')])];
    expect(await Promise.all(offsets)).toEqual([0, 0, 2]);
    expect(requests).toEqual([['t/0:x1,x2', 't/3:y1', 't/0:x3']]);
  });
});
