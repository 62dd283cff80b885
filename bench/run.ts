// `npm run bench [-- <name> ...]`: runs the named benchmarks (all but the soak when none is named).
const BENCHES: Record<string, () => Promise<unknown>> = {
  prompt: () => import('./prompt.ts').then((m) => m.run()),
  'prompt-path': () => import('./prompt-path.ts').then((m) => m.run()),
  'model-call': () => import('./model-call.ts').then((m) => m.run()),
  recovery: () => import('./recovery.ts').then((m) => m.run()),
  gateway: () => import('./gateway.ts').then((m) => m.run()),
  'kafka-clients': () => import('./kafka-clients.ts').then((m) => m.run()),
  long: () => import('./long.ts').then((m) => m.run()),
  soak: () => import('./soak.ts').then((m) => m.run()),
  stream: () => import('./stream.ts').then((m) => m.run()),
  restore: () => import('./restore.ts').then((m) => m.run()),
  voice: () => import('./voice.ts').then((m) => m.run()),
  replay: () => import('./replay.ts').then((m) => m.run()),
  projector: () => import('./projector.ts').then((m) => m.run()),
  'projector-sql': () => import('./projector-sql.ts').then((m) => m.run()),
  append: () => import('./append.ts').then((m) => m.run()),
};

const asked = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const unknown = asked.filter((a) => !BENCHES[a]);
if (unknown.length) {
  console.error(`unknown benchmark: ${unknown.join(', ')}; choose from ${Object.keys(BENCHES).join(', ')}`);
  process.exit(2);
}
/** Run only when named: the soak takes more than ten minutes; projector-sql is a breakdown of projector's PostgreSQL share. */
const NAMED_ONLY = new Set(['soak', 'projector-sql']);
for (const name of asked.length ? asked : Object.keys(BENCHES).filter((n) => !NAMED_ONLY.has(n))) {
  console.log(`\n== bench ${name}`);
  await BENCHES[name]!();
}
process.exit(0);
