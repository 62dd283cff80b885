import { createHash } from 'node:crypto';
import { FlowDef } from './definition.ts';
import type { NodeDef, TaskDef } from './definition.ts';
import { malformedPlaceholders, placeholders, stringsIn } from './templates.ts';

/** A problem in a flow definition, at its JSON path (`$.tasks.register.backend`). */
export type FlowError = { path: string; message: string };

export type CompiledTask = TaskDef & { id: string; index: number };

/** A validated flow: its tasks in a flat list (in the order they can run from `start`) and its version hash. */
export type CompiledFlow = {
  id: string;
  /** Hash of the definition: two definitions that mean the same have the same version. */
  version: string;
  title: string | undefined;
  language: 'it' | 'en';
  start: string;
  noInputSec: number | undefined;
  tasks: CompiledTask[];
  byId: Record<string, CompiledTask>;
  ddts: Record<string, { nodes: NodeDef[] }>;
  /** The definition with its defaults, as FlowStarted records it. */
  definition: FlowDef;
};

/** What the deployment provides, which a flow may name. */
export type FlowEnvironment = { backends: readonly string[]; email: boolean; sms: boolean };

export type CompileResult = { ok: true; flow: CompiledFlow } | { ok: false; errors: FlowError[] };

type Edge = { to: string; field: string; fills: string[] };

const pathOf = (parts: readonly PropertyKey[]) =>
  '$' + parts.map((p) => (typeof p === 'number' ? `[${p}]` : /^[A-Za-z_][A-Za-z0-9_]*$/.test(String(p)) ? `.${String(p)}` : `[${JSON.stringify(String(p))}]`)).join('');

/** Validates a flow definition and flattens it; every error found is reported, with its path. */
export function compileFlow(raw: unknown, env: FlowEnvironment): CompileResult {
  const parsed = FlowDef.safeParse(raw);
  if (!parsed.success) return { ok: false, errors: parsed.error.issues.map((i) => ({ path: pathOf(i.path), message: i.message })) };
  // Looked up by the names the flow gives: `"next": "constructor"` must not find Object's own.
  const def = { ...parsed.data, tasks: Object.assign(Object.create(null), parsed.data.tasks) as typeof parsed.data.tasks, ddts: Object.assign(Object.create(null), parsed.data.ddts) as typeof parsed.data.ddts };
  const errors: FlowError[] = [];
  const at = (...parts: string[]) => pathOf(['tasks', ...parts]);
  const ids = Object.keys(def.tasks);
  if (!def.tasks[def.start]) errors.push({ path: '$.start', message: `unknown task "${def.start}"` });

  // What each DDT fills in memory: <ddt>.<node>.
  const ddtFills = (ddt: string) => (def.ddts[ddt]?.nodes ?? []).map((n) => `${ddt}.${n.name}`);
  const edges = new Map<string, Edge[]>();
  for (const [tid, t] of Object.entries(def.tasks)) {
    const out: Edge[] = [];
    const link = (field: 'next' | 'then' | 'else' | 'onError', to: string | undefined, fills: string[] = []) => {
      if (to === undefined) return;
      if (!def.tasks[to]) errors.push({ path: at(tid, field), message: `unknown task "${to}"` });
      else out.push({ to, field, fills });
    };
    switch (t.type) {
      case 'say': link('next', t.next); break;
      case 'getData':
        if (!def.ddts[t.ddt]) errors.push({ path: at(tid, 'ddt'), message: `unknown DDT "${t.ddt}"` });
        link('next', t.next, ddtFills(t.ddt));
        // Gave up on a node: the nodes before it may be confirmed.
        link('onError', t.onError, ddtFills(t.ddt));
        break;
      case 'condition': link('then', t.then); link('else', t.else); break;
      case 'backendCall':
        if (!env.backends.includes(t.backend)) {
          const have = env.backends.length ? `configured: ${env.backends.join(', ')}` : 'none is configured';
          errors.push({ path: at(tid, 'backend'), message: `backend "${t.backend}" is not configured (GEMELLO_BACKENDS; ${have})` });
        }
        link('next', t.next, t.saveAs ? [t.saveAs] : []);
        link('onError', t.onError);
        break;
      case 'sendEmail':
      case 'sendSms': {
        const hook = t.type === 'sendEmail' ? env.email : env.sms;
        if (!hook) errors.push({ path: at(tid, 'type'), message: `${t.type} needs ${t.type === 'sendEmail' ? 'GEMELLO_EMAIL_WEBHOOK' : 'GEMELLO_SMS_WEBHOOK'}, which is not configured` });
        link('next', t.next);
        link('onError', t.onError);
        break;
      }
      case 'transfer':
      case 'end':
        break;
      default: {
        const _never: never = t;
        return _never;
      }
    }
    edges.set(tid, out);
  }
  for (const [name, ddt] of Object.entries(def.ddts)) {
    ddt.nodes.forEach((n, i) => {
      const p = (...f: (string | number)[]) => pathOf(['ddts', name, 'nodes', i, ...f]);
      if (ddt.nodes.findIndex((o) => o.name === n.name) !== i) errors.push({ path: p('name'), message: `node "${n.name}" appears twice` });
      if (n.type === 'pattern' && !n.pattern) errors.push({ path: p('pattern'), message: 'a pattern node needs a pattern' });
      if (n.pattern) {
        try {
          new RegExp(n.pattern, 'u');
        } catch (err) {
          errors.push({ path: p('pattern'), message: `not a regular expression: ${(err as Error).message}` });
        }
      }
      if (n.subData && n.type !== 'date') errors.push({ path: p('subData'), message: 'sub-data (day, month, year) is for date nodes' });
    });
  }

  // Reachable from start, in the order tasks can run (breadth first, fields in order).
  const order: string[] = [];
  if (def.tasks[def.start]) {
    const seen = new Set([def.start]);
    order.push(def.start);
    for (let i = 0; i < order.length; i++) {
      for (const e of edges.get(order[i]!) ?? []) if (!seen.has(e.to)) { seen.add(e.to); order.push(e.to); }
    }
    for (const tid of ids) if (!seen.has(tid)) errors.push({ path: at(tid), message: `task "${tid}" is unreachable from start "${def.start}"` });
  }

  // Cycles with no way out: a reachable task from which no end or transfer can be reached.
  const canExit = new Set(ids.filter((tid) => def.tasks[tid]!.type === 'end' || def.tasks[tid]!.type === 'transfer'));
  for (let changed = true; changed;) {
    changed = false;
    for (const tid of ids) if (!canExit.has(tid) && (edges.get(tid) ?? []).some((e) => canExit.has(e.to))) { canExit.add(tid); changed = true; }
  }
  const reported = new Set<string>();
  for (const tid of order) {
    if (canExit.has(tid) || reported.has(tid)) continue;
    const loop = cycleFrom(tid, edges);
    reported.add(tid);
    if (loop.some((l) => reported.has(l) && l !== tid)) continue;
    for (const l of loop) reported.add(l);
    errors.push({ path: at(loop[0]!), message: `cycle without an exit: ${loop.join(' → ')} → ${loop[0]} never reaches an end or a transfer` });
  }

  // Memory each task may find filled (some path from start fills it), to check the templates.
  const filled = new Map<string, Set<string>>(order.map((tid) => [tid, new Set<string>()]));
  for (let changed = true; changed;) {
    changed = false;
    for (const tid of order) {
      const have = filled.get(tid)!;
      for (const e of edges.get(tid) ?? []) {
        const there = filled.get(e.to);
        if (!there) continue;
        for (const k of [...have, ...e.fills]) if (!there.has(k)) { there.add(k); changed = true; }
      }
    }
  }
  const check = (text: string, path: string, have: Set<string>, extra: string[] = []) => {
    for (const bad of malformedPlaceholders(text)) errors.push({ path, message: `${bad} is not a placeholder: names are letters, digits and _ joined by dots, e.g. {{customer.fullName}}` });
    for (const name of placeholders(text)) {
      if (extra.includes(name)) continue;
      const ok = [...have].some((k) => name === k || (name.startsWith(`${k}.`) && !isDdtKey(k, def)));
      if (!ok) errors.push({ path, message: `template {{${name}}} names memory that no earlier task fills` });
    }
  };
  for (const tid of order) {
    const t = def.tasks[tid]!;
    const have = filled.get(tid)!;
    const texts: { path: string; text: string }[] = [];
    if (t.type === 'say') texts.push({ path: at(tid, 'text'), text: t.text });
    if ((t.type === 'end' || t.type === 'transfer') && t.text) texts.push({ path: at(tid, 'text'), text: t.text });
    if (t.type === 'sendEmail') texts.push({ path: at(tid, 'to'), text: t.to }, { path: at(tid, 'subject'), text: t.subject }, { path: at(tid, 'text'), text: t.text });
    if (t.type === 'sendSms') texts.push({ path: at(tid, 'to'), text: t.to }, { path: at(tid, 'text'), text: t.text });
    if (t.type === 'backendCall') texts.push({ path: at(tid, 'path'), text: t.path }, ...stringsIn(t.body, at(tid, 'body')));
    if (t.type === 'condition') {
      const clauses = 'all' in t.when ? t.when.all : 'any' in t.when ? t.when.any : [t.when];
      clauses.forEach((c, i) => check(`{{${c.var}}}`, 'var' in t.when ? at(tid, 'when', 'var') : at(tid, 'when', 'all' in t.when ? 'all' : 'any', String(i), 'var'), have));
    }
    for (const x of texts) check(x.text, x.path, have);
    if (t.type === 'getData' && def.ddts[t.ddt]) {
      const inner = new Set(have);
      def.ddts[t.ddt]!.nodes.forEach((n, i) => {
        const p = (...f: (string | number)[]) => pathOf(['ddts', t.ddt, 'nodes', i, ...f]);
        check(n.ask, p('ask'), inner);
        if (n.confirm) check(n.confirm, p('confirm'), inner, ['value']);
        n.noMatch.forEach((s, j) => check(s, p('noMatch', j), inner));
        n.noInput.forEach((s, j) => check(s, p('noInput', j), inner));
        n.subData?.forEach((s, j) => check(s.ask, p('subData', j, 'ask'), inner));
        inner.add(`${t.ddt}.${n.name}`);
      });
    }
  }

  // The same error can be found twice (a node's text checked from two getData tasks).
  const unique = [...new Map(errors.map((e) => [`${e.path}\u0000${e.message}`, e])).values()];
  if (unique.length) return { ok: false, errors: unique };
  const tasks = order.map((tid, index) => ({ ...def.tasks[tid]!, id: tid, index }) as CompiledTask);
  return {
    ok: true,
    flow: {
      id: def.id,
      version: versionOf(def),
      title: def.title,
      language: def.language,
      start: def.start,
      noInputSec: def.noInputSec,
      tasks,
      byId: Object.fromEntries(tasks.map((t) => [t.id, t])),
      ddts: def.ddts,
      definition: def,
    },
  };
}

/** A DDT node's memory key holds a value, not an object: `customer.fullName.x` names nothing. */
const isDdtKey = (key: string, def: FlowDef) => {
  const [ddt, node] = key.split('.');
  return node !== undefined && def.ddts[ddt!]?.nodes.some((n) => n.name === node) === true;
};

/** The tasks of a cycle that starts at `from`, following the first edge that stays inside the stuck part. */
function cycleFrom(from: string, edges: Map<string, Edge[]>): string[] {
  const path: string[] = [];
  const index = new Map<string, number>();
  let cur: string | undefined = from;
  while (cur !== undefined && !index.has(cur)) {
    index.set(cur, path.length);
    path.push(cur);
    cur = edges.get(cur)?.[0]?.to;
  }
  return cur === undefined ? path : path.slice(index.get(cur));
}

/** JSON with keys in a fixed order, so the hash does not depend on how the file was written. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value).sort().filter((k) => (value as Record<string, unknown>)[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The version of a definition: the first 16 hex digits of the SHA-256 of its canonical JSON. */
export function versionOf(def: FlowDef): string {
  return createHash('sha256').update(canonical(def)).digest('hex').slice(0, 16);
}

/** The compiled task list as the CLI prints it. */
export function describeFlow(flow: CompiledFlow): string {
  const lines = [`flow ${flow.id} version ${flow.version}${flow.title ? ` (${flow.title})` : ''}: ${flow.tasks.length} tasks`];
  const w = Math.max(...flow.tasks.map((t) => t.id.length));
  for (const t of flow.tasks) {
    let what = '';
    switch (t.type) {
      case 'say': what = `→ ${t.next}`; break;
      case 'getData': what = `${t.ddt} [${flow.ddts[t.ddt]!.nodes.map((n) => `${n.name}:${n.type}`).join(', ')}] → ${t.next}${t.onError ? `, on error → ${t.onError}` : ''}`; break;
      case 'condition': what = `then → ${t.then}, else → ${t.else}`; break;
      case 'backendCall': what = `${t.method} ${t.backend}${t.path}${t.saveAs ? ` as ${t.saveAs}` : ''} → ${t.next}${t.onError ? `, on error → ${t.onError}` : ''}`; break;
      case 'sendEmail': case 'sendSms': what = `to ${t.to} → ${t.next}${t.onError ? `, on error → ${t.onError}` : ''}`; break;
      case 'transfer': what = `to ${t.to}`; break;
      case 'end': what = ''; break;
    }
    lines.push(`${String(t.index + 1).padStart(3)}  ${t.id.padEnd(w)}  ${t.type.padEnd(11)} ${what}`.trimEnd());
  }
  return lines.join('\n');
}
