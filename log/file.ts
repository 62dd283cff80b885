import { EventEmitter } from 'node:events';
import { closeSync, existsSync, fdatasyncSync, fstatSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { ConsumeOptions, EventLog, LogRecord, OutgoingRecord, Subscription } from './port.ts';

// A topic folder holding this file is compacted (see PartitionFile.compact).
const COMPACTED_MARK = 'compacted';

type Stored = { k: string; v: string; h: Record<string, string>; t: number };

/** One partition: an append-only file of JSON lines and the byte position of each line. */
class PartitionFile {
  private readonly fd: number;
  private readonly positions: number[] = [];
  private size = 0;
  /** For a compacted topic: the offset of the last record of each key. */
  private lastOfKey: Map<string, number> | null = null;

  private readonly path: string;

  constructor(path: string) {
    this.path = path;
    this.fd = openSync(path, 'a+');
    const bytes = readFileSync(path);
    let pos = 0;
    for (;;) {
      const nl = bytes.indexOf(0x0a, pos);
      if (nl < 0) break;
      this.positions.push(pos);
      pos = nl + 1;
    }
    this.size = pos;
    // A torn last line (a crash during a write) was never acknowledged: drop it.
    if (this.size < fstatSync(this.fd).size) ftruncateSync(this.fd, this.size);
  }

  get end(): number {
    return this.positions.length;
  }

  append(records: OutgoingRecord[]): number {
    const first = this.positions.length;
    const now = Date.now();
    let chunk = '';
    let pos = this.size;
    for (const r of records) {
      const line = JSON.stringify({ k: r.key, v: r.value, h: r.headers, t: now } satisfies Stored) + '\n';
      this.positions.push(pos);
      pos += Buffer.byteLength(line);
      chunk += line;
    }
    writeSync(this.fd, chunk);
    // Acknowledged means on disk: a crash after append() returns loses nothing.
    fdatasyncSync(this.fd);
    this.size = pos;
    if (this.lastOfKey) {
      records.forEach((r, i) => {
        const before = this.lastOfKey!.get(r.key);
        if (before !== undefined && before < first) this.scrub(before);
        this.lastOfKey!.set(r.key, first + i);
      });
    }
    return first;
  }

  /**
   * Makes this partition compacted, like a Kafka topic with cleanup.policy=compact but at
   * once: from now on a record overwrites, in place, the value of every earlier record with
   * its key (blanks of the same length, so offsets and positions stay), and the superseded
   * bytes are gone from the file when append() returns.
   */
  compact(): void {
    if (this.lastOfKey) return;
    this.lastOfKey = new Map();
    const all = this.read('', 0, 0, this.end);
    for (const r of all) {
      const before = this.lastOfKey.get(r.key);
      if (before !== undefined) this.scrub(before);
      this.lastOfKey.set(r.key, r.offset);
    }
  }

  /** Blanks the value of the record at `offset`; false if it was blank already. */
  private scrub(offset: number): boolean {
    const start = this.positions[offset]!;
    const stop = offset + 1 < this.positions.length ? this.positions[offset + 1]! : this.size;
    const buf = Buffer.alloc(stop - start);
    readSync(this.fd, buf, 0, buf.length, start);
    const s = JSON.parse(buf.toString('utf8')) as Stored;
    if (s.v.trim() === '') return false;
    // The line is JSON.stringify({k, v, h, t}): v's text starts right after `{"k":<k>,"v":"`.
    const from = Buffer.byteLength(`{"k":${JSON.stringify(s.k)},"v":"`);
    const length = Buffer.byteLength(JSON.stringify(s.v)) - 2;
    // A positional write needs its own descriptor: on Linux one opened for appending writes at the end.
    const fd = openSync(this.path, 'r+');
    try {
      writeSync(fd, Buffer.alloc(length, 0x20), 0, length, start + from);
      fdatasyncSync(fd);
    } finally {
      closeSync(fd);
    }
    return true;
  }

  read(topic: string, partition: number, from: number, to: number): LogRecord[] {
    if (from >= to) return [];
    const start = this.positions[from]!;
    const stop = to < this.positions.length ? this.positions[to]! : this.size;
    const buf = Buffer.alloc(stop - start);
    readSync(this.fd, buf, 0, buf.length, start);
    const lines = buf.toString('utf8').split('\n');
    const out: LogRecord[] = [];
    for (let i = 0; i < to - from; i++) {
      const s = JSON.parse(lines[i]!) as Stored;
      out.push({ topic, partition, offset: from + i, key: s.k, value: s.v, headers: s.h, timestamp: s.t });
    }
    return out;
  }

  close(): void {
    closeSync(this.fd);
  }
}

export type FileLogOptions = { dir: string; partitions: number; batchSize?: number };

/**
 * The embedded log: Kafka's model (topics, partitions, offsets, consumer groups with
 * committed offsets) in files, for one process. A group has one member here: the first
 * consumer of a group gets every partition.
 */
export function createFileLog(options: FileLogOptions): EventLog {
  const { dir, partitions } = options;
  const batchSize = options.batchSize ?? 500;
  const files = new Map<string, PartitionFile[]>();
  const appended = new EventEmitter();
  appended.setMaxListeners(0);
  const subscriptions = new Set<{ stop(): Promise<void> }>();
  mkdirSync(dir, { recursive: true });

  const topicFiles = (topic: string): PartitionFile[] => {
    let list = files.get(topic);
    if (!list) {
      // Every partition's file is made with the topic: another count means another GEMELLO_PARTITIONS,
      // under which conversations would hash to other partitions and their events seem gone.
      const made = existsSync(join(dir, topic)) ? readdirSync(join(dir, topic)).filter((n) => /^\d+\.jsonl$/.test(n)).length : 0;
      if (made && made !== partitions) throw Object.assign(new Error(`the embedded log's topic ${topic} under ${dir} has ${made} partitions but GEMELLO_PARTITIONS is ${partitions}; they must match (set GEMELLO_PARTITIONS=${made}, or use a new GEMELLO_DATA_DIR)`), { code: 'bad_config' });
      mkdirSync(join(dir, topic), { recursive: true });
      list = Array.from({ length: partitions }, (_, p) => new PartitionFile(join(dir, topic, `${p}.jsonl`)));
      if (existsSync(join(dir, topic, COMPACTED_MARK))) for (const f of list) f.compact();
      files.set(topic, list);
    }
    return list;
  };
  const partitionFile = (topic: string, partition: number): PartitionFile => {
    const f = topicFiles(topic)[partition];
    if (!f) throw new RangeError(`partition ${partition} of ${topic} does not exist (0..${partitions - 1})`);
    return f;
  };

  const offsetsPath = (group: string, topic: string) => join(dir, 'groups', `${group}--${topic}.json`);
  const loadOffsets = (group: string, topic: string): Record<string, number> | null => {
    try {
      return JSON.parse(readFileSync(offsetsPath(group, topic), 'utf8'));
    } catch {
      return null;
    }
  };
  const saveOffsets = (group: string, topic: string, offsets: Record<string, number>) => {
    mkdirSync(join(dir, 'groups'), { recursive: true });
    const path = offsetsPath(group, topic);
    writeFileSync(path + '.tmp', JSON.stringify(offsets));
    renameSync(path + '.tmp', path);
  };
  const groupsInUse = new Set<string>();

  return {
    kind: 'file',
    partitions,
    async ensureTopics(topics, topicOptions) {
      for (const t of topics) {
        const list = topicFiles(t);
        if (topicOptions?.compacted && !existsSync(join(dir, t, COMPACTED_MARK))) {
          writeFileSync(join(dir, t, COMPACTED_MARK), 'the last record of each key supersedes the earlier ones\n');
          for (const f of list) f.compact();
        }
      }
    },
    async append(topic, partition, records) {
      const offset = partitionFile(topic, partition).append(records);
      appended.emit(`${topic}/${partition}`);
      return offset;
    },
    async read(topic, partition, from, handle) {
      const f = partitionFile(topic, partition);
      const end = f.end;
      for (let o = Math.max(0, from); o < end; o += batchSize) {
        await handle(f.read(topic, partition, o, Math.min(end, o + batchSize)));
      }
      return end;
    },
    async endOffsets(topic) {
      return topicFiles(topic).map((f) => f.end);
    },
    async ping() {},
    async consume(opts: ConsumeOptions): Promise<Subscription> {
      const key = `${opts.group}--${opts.topic}`;
      // Push feeds (commit: false) each get every partition; a committing group has one member.
      const owns = opts.commit === false || !groupsInUse.has(key);
      if (opts.commit !== false) groupsInUse.add(key);
      const list = topicFiles(opts.topic);
      const keep = opts.commit !== false;
      const committed = (keep && loadOffsets(opts.group, opts.topic)) || {};
      const positions = list.map((f, p) => committed[p] ?? (opts.from === 'earliest' ? 0 : f.end));
      let stopped = false;
      const wakers = new Set<() => void>();
      const loops: Promise<void>[] = [];
      await opts.onAssigned?.(owns ? list.map((_, p) => p) : []);
      if (owns) {
        for (let p = 0; p < partitions; p++) {
          loops.push((async () => {
            while (!stopped) {
              const f = list[p]!;
              if (positions[p]! >= f.end) {
                await new Promise<void>((resolve) => {
                  const wake = () => {
                    appended.off(`${opts.topic}/${p}`, wake);
                    wakers.delete(wake);
                    resolve();
                  };
                  appended.on(`${opts.topic}/${p}`, wake);
                  wakers.add(wake);
                });
                continue;
              }
              const batch = f.read(opts.topic, p, positions[p]!, Math.min(f.end, positions[p]! + batchSize));
              try {
                await opts.handle(p, batch);
              } catch (err) {
                // Same as a Kafka consumer whose handler throws: the batch comes again.
                console.error(`[file-log] ${opts.group} partition ${p}: ${(err as Error).message}; retrying`);
                await new Promise((r) => setTimeout(r, 200));
                continue;
              }
              positions[p] = batch[batch.length - 1]!.offset + 1;
              if (keep) saveOffsets(opts.group, opts.topic, Object.fromEntries(positions.map((o, i) => [i, o])));
            }
          })());
        }
      }
      const sub = {
        async stop() {
          stopped = true;
          for (const w of [...wakers]) w();
          await Promise.all(loops);
          if (owns && opts.commit !== false) groupsInUse.delete(key);
          subscriptions.delete(sub);
        },
      };
      subscriptions.add(sub);
      return sub;
    },
    async close() {
      await Promise.all([...subscriptions].map((s) => s.stop()));
      for (const list of files.values()) for (const f of list) f.close();
      files.clear();
    },
  };
}
