// The deployment files as their tools see them, held against the code they deploy:
// - every compose combination renders with `docker-compose config`;
// - every Kustomize overlay renders with `kubectl kustomize`, and each object it renders is
//   valid against the Kubernetes API schemas, strictly (no unknown field);
// - every command a container runs is a `gemello` command, every probe path and port is one the
//   process serves, every environment variable set is one the code reads;
// - the image's start command, run outside a container as the Dockerfile runs it (uid 1000,
//   code it cannot write, data on a writable path), answers the seed frame.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, cpSync, existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppDeps } from '../../gateway/app.ts';
import { createApp } from '../../gateway/app.ts';
import { createOpsApp } from '../../runtime/ops-app.ts';
import { SECRET_VARIABLES } from '../../runtime/file-env.ts';
import { createLogger } from '../../telemetry/logger.ts';
import { createMetrics } from '../../telemetry/metrics.ts';
import { cliCommands, dockerContext, envReadBy, have, importGraph, NODE24, readDockerfile, ROOT, run, unknownEnv, yamlDoc, yamlDocs } from '../support/deploy-files.ts';
import { validateObject } from '../support/k8s-schema.ts';
import { freePort } from '../support/processes.ts';
import { connect } from '../support/ws-client.ts';

const COMPOSE = join(ROOT, 'infra', 'compose');
const K8S = join(ROOT, 'infra', 'k8s');
const ENVS = ['dev', 'staging', 'prod'] as const;
const IMAGE_ENTRIES = ['cli/gemello.ts', 'main.ts'];
const need = (tool: string, pkg: string) => {
  if (!have(tool)) throw new Error(`${tool} is not installed: apt-get install ${pkg} (.ci/run does this)`);
};

const image = readDockerfile();
const context = dockerContext();
const shipped = importGraph(IMAGE_ENTRIES);
const envRead = envReadBy(shipped.files);
const commands = cliCommands(run(NODE24, [join(ROOT, 'cli', 'gemello.ts'), 'help'], { env: { PATH: process.env.PATH!, GEMELLO_LOG_QUIET: '1' } }));

/** The routes each kind of process serves, asked of the apps themselves. */
const gatewayApp = createApp({ metrics: createMetrics(), checks: async () => ({}), logger: createLogger('test', true), auth: null, readApi: null } as unknown as AppDeps);
const opsApp = createOpsApp({ metrics: createMetrics(), checks: async () => ({}) });
afterAll(() => gatewayApp.close());
const serves = async (role: string, path: string) => {
  const app = role === 'gateway' || role === 'serve' ? gatewayApp.app : opsApp;
  return (await app.request(path)).status === 200;
};
/** The variable that names the port a role's probes and metrics are on. */
const portVariable = (role: string) => (role === 'gateway' || role === 'serve' ? 'PORT' : 'GEMELLO_OPS_PORT');

describe('the image (Dockerfile)', () => {
  it('copies every file the entry points import, and those import only production dependencies', () => {
    const copied = new Set(image.copies.flatMap((c) => c.sources).flatMap((s) => context.filter((f) => s === '.' || f === s || f.startsWith(`${s.replace(/\/$/, '')}/`))));
    expect(shipped.files.filter((f) => !copied.has(f)), 'imported by the entry points but not in the image (Dockerfile COPY, .dockerignore)').toEqual([]);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    expect([...shipped.packages].filter((p) => !(p in pkg.dependencies))).toEqual([]);
  });

  it('runs as uid 1000 with gemello as the entry point, data under a volume, a health check on /health', async () => {
    expect(image.user.split(':')[0]).toBe('1000');
    expect(image.entrypoint).toEqual(['gemello']);
    expect(commands.has(image.cmd[0]!)).toBe(true);
    expect(image.env.GEMELLO_DATA_DIR).toBe('/data');
    expect(unknownEnv(Object.keys(image.env), envRead)).toEqual([]);
    expect(image.healthcheck.join(' ')).toContain('/health');
    expect(await serves('gateway', '/health')).toBe(true);
    expect(await serves('actors', '/health')).toBe(true);
    expect(readFileSync(join(ROOT, 'Dockerfile'), 'utf8')).toMatch(/npm ci --omit=dev/);
    // Speech is on in compose and Kubernetes: without an OpenAI key the image speaks with espeak-ng.
    expect(image.runs.some((r) => /apt-get install .*\bespeak-ng\b/.test(r))).toBe(true);
  });
});

describe('compose (infra/compose)', () => {
  const rendered: Record<string, Record<string, any>> = {};
  beforeAll(() => {
    need('docker-compose', 'docker-compose');
    // A clean environment: compose lets the shell's variables win over the env file.
    for (const env of ENVS) {
      rendered[env] = yamlDoc(run('docker-compose', ['--env-file', `.env.${env}.example`, '-f', 'docker-compose.yml', '-f', `docker-compose.${env}.yml`, 'config'], { cwd: COMPOSE, env: { PATH: process.env.PATH! } }));
    }
  });

  it('the base file alone renders (every override only adds to it)', () => {
    const base = yamlDoc(run('docker-compose', ['--env-file', '.env.dev.example', '-f', 'docker-compose.yml', 'config'], { cwd: COMPOSE, env: { PATH: process.env.PATH! } }));
    expect(Object.keys(base.services).sort()).toEqual(['actors', 'gateway', 'grafana', 'jaeger', 'kafka', 'migrate', 'postgres', 'projections', 'prometheus', 'proxy', 'redis']);
  });

  it('the backends-only file for the host (infra/docker-compose.yml) still renders', () => {
    need('docker-compose', 'docker-compose');
    const backends = yamlDoc(run('docker-compose', ['-f', 'docker-compose.yml', 'config'], { cwd: join(ROOT, 'infra'), env: { PATH: process.env.PATH! } }));
    const byDefault = Object.entries(backends.services).filter(([, svc]) => !(svc as { profiles?: string[] }).profiles?.length).map(([name]) => name);
    expect(byDefault.sort()).toEqual(['jaeger', 'kafka', 'postgres', 'redis']);
    // The three-broker cluster starts only with `--profile cluster`.
    const cluster = Object.entries(backends.services).filter(([, svc]) => (svc as { profiles?: string[] }).profiles?.includes('cluster')).map(([name]) => name);
    expect(cluster.sort()).toEqual(['kafka-cluster-1', 'kafka-cluster-2', 'kafka-cluster-3']);
  });

  it.each(ENVS)('%s renders: two gateways behind the proxy, two actor hosts, projections, migrate first, Prometheus, Grafana', (env) => {
    const s = rendered[env]!.services;
    expect(s.gateway.deploy.replicas).toBeGreaterThanOrEqual(2);
    expect(s.actors.deploy.replicas).toBeGreaterThanOrEqual(2);
    expect(s.projections).toBeDefined();
    expect(s.migrate.command).toEqual(['migrate']);
    for (const role of ['gateway', 'actors', 'projections']) expect(s[role].depends_on.migrate.condition).toBe('service_completed_successfully');
    expect(s.gateway.ports ?? []).toEqual([]); // only through the proxy
    expect(s.proxy.ports.length).toBe(1);
    const nginx = readFileSync(join(COMPOSE, 'proxy', 'nginx.conf'), 'utf8').replace(/#.*$/gm, '');
    expect(nginx).not.toMatch(/ip_hash|sticky|hash \$/);
    expect(nginx).toMatch(new RegExp(`server gateway:${s.gateway.environment.PORT}\\b`));
    for (const x of ['kafka', 'postgres', 'redis', 'jaeger', 'prometheus', 'grafana']) expect(s[x]).toBeDefined();
    const kafkas = Object.keys(s).filter((k) => /^kafka(-\d+)?$/.test(k));
    expect(kafkas.length).toBe(env === 'prod' ? 3 : 1);
    if (env === 'prod') for (const k of kafkas) expect(s[k].environment.KAFKA_DEFAULT_REPLICATION_FACTOR).toBe(3);
    expect(s.gateway.environment.KAFKA_BROKERS.split(',').length).toBe(kafkas.length);
  });

  it.each(ENVS)('%s: secrets come from files, never inline', (env) => {
    const r = rendered[env]!;
    for (const [name, svc] of Object.entries<any>(r.services)) {
      for (const secret of SECRET_VARIABLES) expect(svc.environment?.[secret] ?? '', `${name} sets ${secret} inline`).toBe('');
      for (const [k, v] of Object.entries<any>(svc.environment ?? {})) if (/_FILE$/.test(k)) expect(String(v)).toMatch(/^\/run\/secrets\//);
    }
    for (const secret of Object.values<any>(r.secrets)) expect(secret.file).toBeTruthy();
    expect(r.services.postgres.environment.POSTGRES_PASSWORD_FILE).toBeTruthy();
    expect(r.services.grafana.environment.GF_SECURITY_ADMIN_PASSWORD__FILE).toBeTruthy();
  });

  it('Redis takes its password from the secret file, and no command line shows it', async () => {
    need('redis-server', 'redis-server');
    // The entrypoint as compose renders it (`$$` is compose's `$`), run here on a free port with a secret of our own.
    const [shell, flag, script] = rendered.prod!.services.redis.entrypoint as string[];
    const dir = mkdtempSync(join(tmpdir(), 'gemello-redis-'));
    const password = `pw-${process.pid}-${Date.now()}`;
    writeFileSync(join(dir, 'redis_password'), password);
    const port = await freePort();
    const local = script!.replaceAll('$$', '$').replaceAll('/run/secrets/', `${dir}/`).replace('exec redis-server -', `exec redis-server - --port ${port} --bind 127.0.0.1 --dir ${dir}`);
    const server = spawn(shell!, [flag!, local], { stdio: 'ignore' });
    try {
      const cli = (args: string[], env: Record<string, string> = {}) => spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8', env: { PATH: process.env.PATH!, ...env } }).stdout.trim();
      for (let i = 0; i < 100 && !cli(['ping']); i++) await new Promise((r) => setTimeout(r, 50));
      expect(cli(['ping'])).toMatch(/NOAUTH/);
      expect(cli(['ping'], { REDISCLI_AUTH: password })).toBe('PONG');
      expect(readFileSync(`/proc/${server.pid}/cmdline`, 'utf8')).not.toContain(password);
    } finally {
      server.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each(ENVS)('%s: every gemello container runs a gemello command, probes a served path on its port, sets only variables the code reads', async (env) => {
    const gemelloImage = rendered[env]!.services.gateway.image;
    for (const [name, svc] of Object.entries<any>(rendered[env]!.services)) {
      if (svc.image !== gemelloImage) continue;
      const role = svc.command[0];
      expect(commands.has(role), `${name} runs "${role}"`).toBe(true);
      expect(svc.entrypoint ?? null).toBeNull(); // the image's: gemello
      expect(unknownEnv(Object.keys(svc.environment), envRead), `${name} sets variables nothing reads`).toEqual([]);
      // Without it each process would make a master key of its own in its data directory.
      if (envRead.has('GEMELLO_MASTER_KEY')) expect(svc.environment.GEMELLO_MASTER_KEY_FILE, `${name} has the master key`).toMatch(/^\/run\/secrets\//);
      expect(svc.read_only).toBe(true);
      expect(svc.user).toBe('1000:1000');
      if (svc.healthcheck) {
        const url = /http:\/\/127\.0\.0\.1:(\d+)(\/\S*?)['")]/.exec(svc.healthcheck.test.join(' '))!;
        expect(url[1]).toBe(String(svc.environment[portVariable(role)]));
        expect(await serves(role, url[2]!), `${name} probes ${url[2]}`).toBe(true);
      }
    }
  });

  it('Prometheus scrapes every role on the port its metrics are served on, and Grafana gets the dashboard', async () => {
    const prom = yamlDoc(readFileSync(join(COMPOSE, 'prometheus', 'prometheus.yml'), 'utf8'));
    const s = rendered.prod!.services;
    for (const role of ['gateway', 'actors', 'projections']) {
      const job = prom.scrape_configs.find((j: any) => j.dns_sd_configs?.[0]?.names?.includes(role));
      expect(job, `a scrape job for ${role}`).toBeDefined();
      expect(String(job.dns_sd_configs[0].port)).toBe(String(s[role].environment[portVariable(role)]));
      expect(await serves(role, job.metrics_path ?? '/metrics')).toBe(true);
    }
    const provisioning = yamlDoc(readFileSync(join(COMPOSE, 'grafana', 'provisioning', 'dashboards', 'gemello.yml'), 'utf8'));
    // docker-compose 1.x renders volumes as "source:target:mode", 2.x as objects.
    const mounts = s.grafana.volumes.map((v: any) => (typeof v === 'string' ? { source: v.split(':')[0], target: v.split(':')[1] } : v));
    expect(mounts.find((v: any) => v.target === provisioning.providers[0].options.path)?.source).toBe(join(ROOT, 'infra', 'grafana'));
  });
});

describe('Kubernetes (infra/k8s)', () => {
  const rendered: Record<string, Array<Record<string, any>>> = {};
  beforeAll(() => {
    need('kubectl', 'kubectl');
    for (const overlay of ['base', ...ENVS.map((e) => `overlays/${e}`)]) rendered[overlay] = yamlDocs(run('kubectl', ['kustomize', join(K8S, overlay)]));
  });
  const of = (overlay: string, kind: string) => rendered[overlay]!.filter((o) => o.kind === kind);
  /** The pod a workload runs: a Deployment's or Job's template, a CronJob's job template's. */
  const podOf = (o: Record<string, any>) => (o.kind === 'CronJob' ? o.spec.jobTemplate.spec.template : o.spec.template) as Record<string, any>;
  const containers = (o: Record<string, any>) => podOf(o).spec.containers as Array<Record<string, any>>;
  const workloads = (overlay: string) => [...of(overlay, 'Deployment'), ...of(overlay, 'Job'), ...of(overlay, 'CronJob')];

  it('the strict validator refuses a misspelt field and a wrong type', async () => {
    const d = structuredClone(of('base', 'Deployment')[0]!);
    containers(d)[0]!.readinesProbe = containers(d)[0]!.readinessProbe;
    d.spec.replicas = 'two';
    expect(await validateObject(d)).toEqual(expect.arrayContaining([expect.stringMatching(/readinesProbe: unknown field/), expect.stringMatching(/replicas.*integer/)]));
  });

  it.each(['base', ...ENVS.map((e) => `overlays/${e}`)])('%s renders, and every object is valid against the Kubernetes schemas', async (overlay) => {
    for (const o of rendered[overlay]!) expect(await validateObject(o), `${o.kind} ${o.metadata?.name}`).toEqual([]);
  });

  it.each(ENVS)('overlays/%s: the roles, the migration Job, Services and ConfigMap in its namespace; Secret references only', (env) => {
    const objs = rendered[`overlays/${env}`]!;
    expect(of(`overlays/${env}`, 'Namespace').map((n) => n.metadata.name)).toEqual([`gemello-${env}`]);
    for (const o of objs) if (o.kind !== 'Namespace') expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBe(`gemello-${env}`);
    expect(of(`overlays/${env}`, 'Deployment').map((d) => d.metadata.name).sort()).toEqual(['gemello-actors', 'gemello-gateway', 'gemello-projections']);
    expect(of(`overlays/${env}`, 'Job').map((j) => containers(j)[0]!.args)).toEqual([['migrate']]);
    // Disaster recovery on demand: `kubectl create job --from=cronjob/gemello-restore`, never scheduled.
    expect(of(`overlays/${env}`, 'CronJob').map((j) => [j.spec.suspend, containers(j)[0]!.args])).toEqual([[true, ['restore']]]);
    expect(of(`overlays/${env}`, 'Service').map((s) => s.metadata.name).sort()).toEqual(['gemello-actors', 'gemello-gateway', 'gemello-projections']);
    expect(of(`overlays/${env}`, 'Service').find((s) => s.metadata.name === 'gemello-gateway')!.spec.sessionAffinity).toBe('None');
    expect(of(`overlays/${env}`, 'ConfigMap').length).toBe(1);
    expect(of(`overlays/${env}`, 'Secret')).toEqual([]);
    // Kafka, PostgreSQL and Redis are the cluster's own, named by configuration.
    expect(of(`overlays/${env}`, 'ConfigMap')[0]!.data.KAFKA_BROKERS).toBeTruthy();
  });

  it.each(ENVS)('overlays/%s: every container runs the image tag the overlay names (dev: `dev`)', (env) => {
    const kustomization = yamlDoc(readFileSync(join(K8S, 'overlays', env, 'kustomization.yaml'), 'utf8'));
    const tag = kustomization.images[0].newTag as string;
    if (env === 'dev') expect(tag).toBe('dev');
    const images = new Set(workloads(`overlays/${env}`).flatMap((w) => containers(w).map((c) => c.image as string)));
    expect([...images]).toEqual([`registry.example.com/gemello/gemello:${tag}`]);
  });

  it.each(ENVS)('overlays/%s: non-root, read-only root filesystem, no capabilities, resources, probes, time for the hand-over', (env) => {
    for (const w of workloads(`overlays/${env}`)) {
      const pod = podOf(w).spec;
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
      expect(pod.automountServiceAccountToken).toBe(false);
      for (const c of pod.containers) {
        expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
        expect(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory).toBeTruthy();
        expect(c.volumeMounts.map((m: any) => m.mountPath)).toEqual(expect.arrayContaining(['/tmp', image.env.GEMELLO_DATA_DIR]));
      }
      if (w.kind !== 'Deployment') continue;
      const c = pod.containers[0];
      expect(c.livenessProbe.httpGet.path).toBe('/health');
      expect(c.readinessProbe.httpGet.path).toBe('/ready');
      // The process gives itself 15 s to hand its partitions over (runtime/node.ts); the pod waits longer.
      expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(15 + (c.lifecycle?.preStop?.sleep?.seconds ?? 0));
    }
  });

  it('overlays/prod: replicas, autoscaling, disruption budgets, spread over zones and nodes', () => {
    const o = 'overlays/prod';
    const hpa = of(o, 'HorizontalPodAutoscaler');
    expect(hpa.map((h) => h.spec.scaleTargetRef.name).sort()).toEqual(['gemello-actors', 'gemello-gateway']);
    const partitions = Number(of(o, 'ConfigMap')[0]!.data.GEMELLO_PARTITIONS);
    // More actor hosts than partitions would sit idle.
    expect(hpa.find((h) => h.spec.scaleTargetRef.name === 'gemello-actors')!.spec.maxReplicas).toBeLessThanOrEqual(partitions);
    for (const h of hpa) expect(h.spec.minReplicas).toBeGreaterThanOrEqual(3);
    expect(of(o, 'Deployment').find((d) => d.metadata.name === 'gemello-projections')!.spec.replicas).toBeGreaterThanOrEqual(2);
    expect(of(o, 'PodDisruptionBudget').length).toBe(3);
    for (const d of of(o, 'Deployment')) expect(d.spec.template.spec.topologySpreadConstraints.map((t: any) => t.topologyKey).sort()).toEqual(['kubernetes.io/hostname', 'topology.kubernetes.io/zone']);
  });

  it.each(['base', ...ENVS.map((e) => `overlays/${e}`)])('%s: every container runs a gemello command, probes a served path on its port, sets only variables the code reads', async (overlay) => {
    const configMaps = new Map(of(overlay, 'ConfigMap').map((c) => [c.metadata.name, c.data as Record<string, string>]));
    for (const w of workloads(overlay)) {
      for (const c of containers(w)) {
        expect(c.command ?? null, `${w.metadata.name} keeps the image's entry point`).toBeNull();
        const role = c.args[0];
        expect(commands.has(role), `${w.metadata.name} runs "${role}"`).toBe(true);
        const env: Record<string, string> = {};
        for (const from of c.envFrom ?? []) Object.assign(env, configMaps.get(from.configMapRef.name) ?? expect.fail(`${w.metadata.name}: no ConfigMap ${from.configMapRef.name}`));
        for (const e of c.env ?? []) env[e.name] = e.value ?? '(secret)';
        expect(unknownEnv(Object.keys(env), envRead), `${w.metadata.name} sets variables nothing reads`).toEqual([]);
        // Every process of a deployment must have the same master key (without one, each pod would make its own).
        if (envRead.has('GEMELLO_MASTER_KEY')) {
          expect(env.GEMELLO_MASTER_KEY, `${w.metadata.name} has the master key`).toBe('(secret)');
          expect(c.env.find((e: any) => e.name === 'GEMELLO_MASTER_KEY').valueFrom.secretKeyRef.optional ?? false, `${w.metadata.name} needs the master key`).toBe(false);
        }
        for (const e of c.env ?? []) if (e.valueFrom) expect(Object.keys(e.valueFrom)).toEqual(['secretKeyRef']);
        for (const probe of [c.startupProbe, c.livenessProbe, c.readinessProbe].filter(Boolean)) {
          const port = typeof probe.httpGet.port === 'number' ? probe.httpGet.port : c.ports.find((p: any) => p.name === probe.httpGet.port)?.containerPort;
          expect(String(port), `${w.metadata.name} probes the port it serves on`).toBe(env[portVariable(role)]);
          expect(await serves(role, probe.httpGet.path), `${w.metadata.name} probes ${probe.httpGet.path}`).toBe(true);
        }
        if (podOf(w).metadata?.annotations?.['prometheus.io/port']) expect(podOf(w).metadata.annotations['prometheus.io/port']).toBe(env[portVariable(role)]);
      }
    }
  });
});

describe('the cross-check itself', () => {
  it('refuses a misspelt variable and an unknown command, knows the real ones', () => {
    expect(unknownEnv(['GEMELLO_PARTITIONS', 'DATABASE_URL_FILE', 'GEMELLO_PARTITONS', 'GEMELLO_TWINS_FILE_FILE'], envRead)).toEqual(['GEMELLO_PARTITONS', 'GEMELLO_TWINS_FILE_FILE']);
    expect(['serve', 'gateway', 'actors', 'projections', 'migrate', 'replay', 'verify', 'doctor'].filter((c) => !commands.has(c))).toEqual([]);
    expect(commands.has('gatway')).toBe(false);
  });
});

describe('Grafana dashboard (infra/grafana)', () => {
  it('every query names a metric the code records, over the Prometheus datasource', () => {
    const recorded = new Set<string>();
    for (const f of shipped.files) {
      for (const m of readFileSync(join(ROOT, f), 'utf8').matchAll(/\.(counter|gauge|histogram)\(\s*'(gemello_[a-z0-9_]+)'/g)) {
        if (m[1] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) recorded.add(m[2]! + s);
        else recorded.add(m[2]!);
      }
    }
    const dashboards = readdirSync(join(ROOT, 'infra', 'grafana')).filter((f) => f.endsWith('.json'));
    expect(dashboards.length).toBeGreaterThan(0);
    for (const file of dashboards) {
      const d = JSON.parse(readFileSync(join(ROOT, 'infra', 'grafana', file), 'utf8'));
      const panels = d.panels.flatMap((p: any) => [p, ...(p.panels ?? [])]).filter((p: any) => p.type !== 'row');
      for (const p of panels) {
        expect(p.datasource?.uid, p.title).toBe('prometheus');
        for (const t of p.targets) {
          const names = [...t.expr.matchAll(/\b(gemello_[a-z0-9_]+)/g)].map((m) => m[1]);
          expect(names.length, `${p.title}: ${t.expr}`).toBeGreaterThan(0);
          for (const n of names) expect(recorded.has(n), `${p.title}: ${n} is not a metric gemello records`).toBe(true);
        }
      }
    }
  });
});

describe("the image's start command, outside a container", () => {
  let dir = '';
  let child: ReturnType<typeof spawn> | null = null;
  afterAll(async () => {
    if (child && child.exitCode === null) {
      const gone = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 15_000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    if (dir) {
      if (process.getuid?.() !== 0) spawnSync('chmod', ['-R', 'u+w', dir]);
      rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
    }
  });

  it('as uid 1000, with the code read-only and data on a writable path, answers the seed frame', async () => {
    const root = process.getuid?.() === 0;
    if (root) need('setpriv', 'util-linux');
    dir = mkdtempSync(join(tmpdir(), 'gemello-image-'));
    chmodSync(dir, 0o755);
    const app = join(dir, 'app');
    const map = (p: string) => (p.startsWith(image.workdir) ? join(app, p.slice(image.workdir.length)) : join(dir, p));
    mkdirSync(app);
    // As the image's layers: the production dependencies (`npm ci --omit=dev`: every package of
    // the lockfile but the dev ones), then each COPY of the final stage. Hard links where the
    // files stay root's (uid 1000 cannot write them); a read-only copy otherwise.
    const copy = (from: string, to: string) => (root ? run('cp', ['-al', from, to]) : cpSync(from, to, { recursive: true }));
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    const prod = Object.entries(lock.packages).filter(([k, v]) => k.startsWith('node_modules/') && !v.dev && existsSync(join(ROOT, k))).map(([k]) => k);
    const dev = Object.entries(lock.packages).filter(([k, v]) => k.startsWith('node_modules/') && v.dev).map(([k]) => k);
    for (const k of prod.filter((k) => k.lastIndexOf('node_modules/') === 0)) {
      mkdirSync(dirname(join(app, k)), { recursive: true });
      copy(join(ROOT, k), join(app, k));
    }
    for (const k of dev) rmSync(join(app, k), { recursive: true, force: true });
    for (const c of image.copies) {
      const dest = c.dest.startsWith('/') ? map(c.dest) : join(app, c.dest);
      for (const s of c.sources) {
        // Docker: a folder's contents go to the destination, a file into a destination ending in "/";
        // either way only what .dockerignore lets into the context.
        const folder = statSync(join(ROOT, s)).isDirectory();
        for (const f of context.filter((f) => (folder ? s === '.' || f.startsWith(`${s.replace(/\/$/, '')}/`) : f === s))) {
          const to = folder ? join(dest, s === '.' ? f : f.slice(s.replace(/\/$/, '').length + 1)) : c.dest.endsWith('/') ? join(dest, basename(f)) : dest;
          mkdirSync(dirname(to), { recursive: true });
          if (root) linkSync(join(ROOT, f), to);
          else copyFileSync(join(ROOT, f), to);
        }
      }
    }
    expect(existsSync(join(app, 'test'))).toBe(false);
    expect(existsSync(join(app, 'node_modules', 'vitest'))).toBe(false);
    expect(existsSync(join(app, 'node_modules', 'deno'))).toBe(false);
    // RUN ln -s /app/cli/gemello.ts /usr/local/bin/gemello: `gemello` on PATH.
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    const link = /ln -s (\S+) \S+\/gemello\b/.exec(image.runs.join('\n'))!;
    symlinkSync(map(link[1]!), join(bin, 'gemello'));
    // The image's /usr/local/bin/node: the checkout's Node 24, linked where uid 1000 can reach it
    // (a checkout in a private directory, as mktemp -d makes, is not).
    const node = realpathSync(NODE24);
    try {
      linkSync(node, join(bin, 'node'));
    } catch {
      copyFileSync(node, join(bin, 'node'));
      chmodSync(join(bin, 'node'), 0o755);
    }
    const data = join(dir, 'data');
    mkdirSync(data);
    if (root) chownSync(data, 1000, 1000);
    else spawnSync('chmod', ['-R', 'a-w', app]);

    const port = await freePort();
    // The image's environment and nothing else, with its data path (the volume) moved here and
    // the gateway on loopback; HOME is as unwritable as on a read-only root filesystem.
    const env: Record<string, string> = {
      ...image.env,
      GEMELLO_DATA_DIR: data,
      HOST: '127.0.0.1',
      PORT: String(port),
      PATH: `${bin}:/usr/local/bin:/usr/bin:/bin`,
      HOME: app,
    };
    const argv = [...image.entrypoint, ...image.cmd];
    const as1000 = ['--reuid=1000', '--regid=1000', '--clear-groups', '--'];
    if (root) expect(spawnSync('setpriv', [...as1000, 'sh', '-c', `touch ${app}/x || touch ${app}/cli/x`]).status, 'uid 1000 cannot write the code').not.toBe(0);
    child = root ? spawn('setpriv', [...as1000, ...argv], { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] }) : spawn(argv[0]!, argv.slice(1), { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    const end = Date.now() + 90_000;
    while (!/info gemello: ready/.test(out)) {
      if (child.exitCode !== null) throw new Error(`the start command exited (${child.exitCode}):\n${out}`);
      if (Date.now() > end) throw new Error(`not ready within 90 s:\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(out).toMatch(/roles: gateway, actors, projections/);
    const client = await connect(`ws://127.0.0.1:${port}/ws`);
    const seed = { digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };
    client.send({ ...seed, prompt: 'What is a moat?' });
    const reply = await client.next((f) => f.type === 'reply' || f.type === 'error');
    client.close();
    expect(reply).toMatchObject({ type: 'reply', ...seed, seq: 3 });
    expect(String(reply.reply)).toMatch(/offline/);
    expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
    // What it wrote is under the data path, and nowhere in the code.
    expect(readdirSync(data)).toEqual(expect.arrayContaining(['log', 'readmodel']));
  }, 150_000);
});
