// Reading the deployment files the way their tools do: the Dockerfile's final stage, rendered
// compose files and Kustomize overlays, and what the code itself reads (CLI commands, routes,
// environment variables), so a test can hold one against the other.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { SECRET_VARIABLES } from '../../runtime/file-env.ts';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const NODE24 = join(ROOT, 'node_modules', '.bin', 'node');

/** The instructions of the Dockerfile's last stage (the image), continuation lines joined. */
export type Stage = {
  workdir: string;
  /** `COPY <src…> <dest>` without --from: what the image takes from the build context. */
  copies: Array<{ sources: string[]; dest: string }>;
  env: Record<string, string>;
  user: string;
  runs: string[];
  entrypoint: string[];
  cmd: string[];
  healthcheck: string[];
};

export function readDockerfile(path = join(ROOT, 'Dockerfile')): Stage {
  const lines = readFileSync(path, 'utf8').replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const last = lines.map((l) => l.split(/\s+/)[0]!.toUpperCase()).lastIndexOf('FROM');
  const stage: Stage = { workdir: '/', copies: [], env: {}, user: 'root', runs: [], entrypoint: [], cmd: [], healthcheck: [] };
  for (const line of lines.slice(last + 1)) {
    const [op, ...rest] = line.split(/\s+/);
    const arg = line.slice(op!.length).trim();
    switch (op!.toUpperCase()) {
      case 'WORKDIR': stage.workdir = arg; break;
      case 'COPY': {
        if (rest.some((r) => r.startsWith('--from'))) break;
        const parts = rest.filter((r) => !r.startsWith('--'));
        stage.copies.push({ sources: parts.slice(0, -1), dest: parts[parts.length - 1]! });
        break;
      }
      case 'ENV': for (const m of arg.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S*)/g)) stage.env[m[1]!] = m[2]!.replace(/^"|"$/g, ''); break;
      case 'USER': stage.user = arg; break;
      case 'RUN': stage.runs.push(arg); break;
      case 'ENTRYPOINT': stage.entrypoint = JSON.parse(arg); break;
      case 'CMD': stage.cmd = JSON.parse(arg); break;
      case 'HEALTHCHECK': stage.healthcheck = JSON.parse(arg.slice(arg.indexOf('CMD') + 3).trim()); break;
    }
  }
  return stage;
}

/** A .dockerignore pattern as a regular expression over context paths (`*` within a name, `**` across folders). */
function ignoreRegex(pattern: string): RegExp {
  const p = pattern.replace(/^\/+|\/+$/g, '');
  let re = '';
  for (let i = 0; i < p.length; i++) {
    if (p.startsWith('**/', i)) { re += '(?:.*/)?'; i += 2; }
    else if (p.startsWith('**', i)) { re += '.*'; i += 1; }
    else if (p[i] === '*') re += '[^/]*';
    else if (p[i] === '?') re += '[^/]';
    else re += p[i]!.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/**
 * The files of the build context that reach the image (paths relative to the repository):
 * everything but what .dockerignore names; a folder it names is left out with all it holds.
 */
export function dockerContext(root = ROOT): string[] {
  const text = readFileSync(join(root, '.dockerignore'), 'utf8');
  const patterns = text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  if (patterns.some((p) => p.startsWith('!'))) throw new Error('.dockerignore: exceptions (!) are not read by this test helper');
  const ignored = patterns.map(ignoreRegex);
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const entry of readdirSync(join(root, rel), { withFileTypes: true })) {
      const path = rel ? `${rel}/${entry.name}` : entry.name;
      if (ignored.some((r) => r.test(path))) continue;
      if (entry.isDirectory()) walk(path);
      else out.push(path);
    }
  };
  walk('');
  return out.sort();
}

/** Runs a tool and returns its stdout; a failure throws with its stderr. */
export function run(command: string, args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): string {
  const r = spawnSync(command, args, { cwd: options.cwd, env: options.env ?? { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root' }, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw new Error(`${command}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${r.status}:\n${r.stderr}`);
  return r.stdout;
}

/** Whether a program is on PATH. */
export const have = (command: string) => spawnSync('sh', ['-c', `command -v ${command}`]).status === 0;

export const yamlDocs = (text: string) => parseAllDocuments(text).map((d) => d.toJS()).filter(Boolean) as Array<Record<string, any>>;
export const yamlDoc = (text: string) => parseYaml(text) as Record<string, any>;

/**
 * Every source file the image runs: the relative imports reachable from its entry files, and the
 * bare package names they import (what `npm ci --omit=dev` must provide).
 */
export function importGraph(entries: string[]): { files: string[]; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:^|[\s;])(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|^import\s+['"]([^'"]+)['"]/gm)) {
      const spec = (m[1] ?? m[2] ?? m[3])!;
      if (spec.startsWith('.')) visit(resolve(dirname(file), spec));
      else if (!spec.startsWith('node:')) packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
    }
  };
  for (const e of entries) visit(resolve(ROOT, e));
  return { files: [...files].map((f) => relative(ROOT, f)), packages };
}

/**
 * The environment variables the code reads: `env.NAME` / `env['NAME']` / `Deno.env.get('NAME')`
 * anywhere in `files`, and the keys of zod schemas over the environment (`NAME: z.…` / `NAME: int(…)`).
 */
export function envReadBy(files: string[]): Set<string> {
  const names = new Set<string>();
  for (const f of files) {
    const text = readFileSync(join(ROOT, f), 'utf8');
    for (const m of text.matchAll(/\benv\??\.([A-Z][A-Z0-9_]+)\b|\benv\[['"]([A-Z][A-Z0-9_]+)['"]\]|env\.get\(['"]([A-Z][A-Z0-9_]+)['"]\)/g)) names.add((m[1] ?? m[2] ?? m[3])!);
    // The variables of runtime/config.ts's EnvSchema and models/settings.ts's MODEL_ENV: `NAME: z.…` or one of its helpers (`int(`, `decimal(`, …).
    for (const m of text.matchAll(/^\s+([A-Z][A-Z0-9_]{2,}):\s*(?:z\.|(?:int|optionalInt|decimal|positive|url|oneOf)\(|onOff\b|flag\b)/gm)) names.add(m[1]!);
  }
  return names;
}

/** Names a manifest may set: those the code reads, and NAME_FILE for the secret settings it reads. */
export function unknownEnv(set: string[], read: Set<string>): string[] {
  const secretFiles = new Set(SECRET_VARIABLES.filter((n) => read.has(n)).map((n) => `${n}_FILE`));
  return set.filter((n) => !read.has(n) && !secretFiles.has(n));
}

/** The commands `gemello help` lists (its lines `  name …` and `  a | b | c`). */
export function cliCommands(help: string): Set<string> {
  const out = new Set<string>();
  for (const line of help.split('\n')) {
    const m = /^ {2}([a-z][a-z-]*(?: \| [a-z][a-z-]*)*)(?:\s|$)/.exec(line);
    if (m) for (const c of m[1]!.split(' | ')) out.add(c);
  }
  return out;
}
