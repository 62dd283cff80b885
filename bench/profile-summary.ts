// Summarises a `--cpu-prof` profile: self time by function and by package (gemello's own
// files by directory), and time inclusive of callees by package (the SDK's share with
// everything it calls). Samples can be cut to a stretch of the monotonic clock in µs, which
// the prompt-path bench prints in its log lines (mono=…), so one phase is read alone.
//
//   node bench/profile-summary.ts <file.cpuprofile> [--from <µs>] [--to <µs>] [--top <n>] [--per <n>]
//   (--per: the number of prompts in that stretch, to print µs per prompt beside the shares)
import { readFileSync } from 'node:fs';

type Frame = { functionName: string; url: string; lineNumber: number };
type Node = { id: number; callFrame: Frame; children?: number[]; parent?: number };
type Profile = { nodes: Node[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number };

/** Which package a frame belongs to: a node_modules package, a Node internal area, gemello's directory, or V8's own. */
export function packageOf(frame: Frame): string {
  const url = frame.url;
  if (!url) {
    if (frame.functionName.startsWith('(')) return frame.functionName;
    return `native ${frame.functionName || '(anonymous)'}`;
  }
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 14).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (url.startsWith('node:internal/deps/')) return url.slice(19).split('/')[0]!;
  if (url.startsWith('node:')) {
    const m = /^node:(?:internal\/)?([^/]+)/.exec(url);
    return `node:${m?.[1]?.replace(/\.js$/, '') ?? url}`;
  }
  const m = /\/(gateway|actors|models|log|events|sealing|telemetry|runtime|stores|projections|flows|cli)\/(?:([^/]+)\/)?/.exec(url);
  if (m) return `gemello ${m[1]}${m[2] && !m[2].endsWith('.ts') ? `/${m[2]}` : ''}`;
  return url.replace(/^file:\/\//, '');
}

const nameOf = (f: Frame) => `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\//, '')}:${f.lineNumber + 1} [${packageOf(f)}]`;

export function summarise(profile: Profile, from = -Infinity, to = Infinity) {
  const byId = new Map<number, Node>();
  for (const n of profile.nodes) byId.set(n.id, n);
  for (const n of profile.nodes) for (const c of n.children ?? []) byId.get(c)!.parent = n.id;
  const self = new Map<string, number>();
  const pkgSelf = new Map<string, number>();
  const pkgIncl = new Map<string, number>();
  const fnIncl = new Map<string, number>();
  let t = profile.startTime;
  let total = 0;
  let idle = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i]!;
    if (t < from || t > to) continue;
    const dt = profile.timeDeltas[i + 1] ?? 0;
    const leaf = byId.get(profile.samples[i]!)!;
    const f = leaf.callFrame;
    if (f.functionName === '(idle)') {
      idle += dt;
      continue;
    }
    total += dt;
    const pkg = packageOf(f);
    const name = nameOf(f);
    self.set(name, (self.get(name) ?? 0) + dt);
    pkgSelf.set(pkg, (pkgSelf.get(pkg) ?? 0) + dt);
    const seen = new Set<string>();
    for (let n: Node | undefined = leaf; n; n = n.parent === undefined ? undefined : byId.get(n.parent)) {
      const p = packageOf(n.callFrame);
      const fn = nameOf(n.callFrame);
      if (!seen.has(fn)) {
        seen.add(fn);
        fnIncl.set(fn, (fnIncl.get(fn) ?? 0) + dt);
      }
      if (seen.has(p)) continue;
      seen.add(p);
      pkgIncl.set(p, (pkgIncl.get(p) ?? 0) + dt);
    }
  }
  return { total, idle, self, pkgSelf, pkgIncl, fnIncl };
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const opt = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args.splice(i, 2)[1]) : undefined;
  };
  const from = opt('--from') ?? -Infinity;
  const to = opt('--to') ?? Infinity;
  const top = opt('--top') ?? 40;
  const per = opt('--per');
  const profile = JSON.parse(readFileSync(args[0]!, 'utf8')) as Profile;
  const s = summarise(profile, from, to);
  const row = (us: number) => `${((100 * us) / s.total).toFixed(1).padStart(5)} %${per ? ` ${(us / per).toFixed(1).padStart(7)} µs` : ''}`;
  const list = (title: string, m: Map<string, number>, n: number) => {
    console.log(`\n${title}`);
    for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, n)) console.log(`${row(v)}  ${k}`);
  };
  console.log(`busy ${(s.total / 1e3).toFixed(0)} ms, idle ${(s.idle / 1e3).toFixed(0)} ms${per ? `, ${(s.total / per).toFixed(1)} µs busy per prompt (${per})` : ''}`);
  list('self time by package', s.pkgSelf, 40);
  list('time by package, callees included', s.pkgIncl, 40);
  list('self time by function', s.self, top);
  list('time by function, callees included', s.fnIncl, top);
}
