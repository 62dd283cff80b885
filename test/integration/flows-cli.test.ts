// `gemello flows compile <file>` as an operator types it: the reference flow prints its task
// list and version; broken copies print each error with its JSON path and exit non-zero.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REFERENCE_FLOW } from '../support/flow-backends.ts';
import { runCli } from '../support/processes.ts';

const env = { ...process.env, GEMELLO_BACKENDS: 'crm=http://127.0.0.1:9', GEMELLO_EMAIL_WEBHOOK: 'http://127.0.0.1:9/mail' };
const gemello = (args: string[], extra: Record<string, string> = {}) => runCli(args, { ...env, ...extra }, 60_000);
const compile = (file: string) => gemello(['flows', 'compile', file]);
const dir = mkdtempSync(join(tmpdir(), 'gemello-flows-cli-'));
const broken = (name: string, breakIt: (d: any) => void) => {
  const def = JSON.parse(readFileSync(REFERENCE_FLOW, 'utf8'));
  breakIt(def);
  const file = join(dir, `${name}.flow.json`);
  writeFileSync(file, JSON.stringify(def));
  return file;
};

describe('gemello flows compile', () => {
  it('prints the reference flow\'s task list and version', async () => {
    const r = await compile(REFERENCE_FLOW);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^flow onboarding version [0-9a-f]{16} \(Registrazione cliente\): 8 tasks$/m);
    for (const task of ['welcome', 'collect', 'adult', 'register', 'minor', 'mail', 'operator', 'bye']) expect(r.stdout).toMatch(new RegExp(`^\\s+\\d+\\s+${task}\\s`, 'm'));
  });

  it.each([
    ['unknown task', (d: any) => (d.tasks.adult.else = 'minorenne'), '$.tasks.adult.else: unknown task "minorenne"'],
    ['unreachable task', (d: any) => (d.tasks.survey = { type: 'say', text: 'Com\'è andata?', next: 'bye' }), '$.tasks.survey: task "survey" is unreachable from start "welcome"'],
    ['missing backend', (d: any) => (d.tasks.register.backend = 'erp'), '$.tasks.register.backend: backend "erp" is not configured'],
    ['bad template', (d: any) => (d.tasks.bye.text = 'Grazie {{customer.nome}}'), '$.tasks.bye.text: template {{customer.nome}} names memory that no earlier task fills'],
  ])('prints the path of a %s and exits non-zero', { concurrent: true }, async (name, breakIt, line) => {
    const r = await compile(broken(name.replace(' ', '-'), breakIt));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(line);
  });

  it('stops the actor host\'s start when a flow of GEMELLO_FLOWS_DIR does not compile, with its errors', async () => {
    const flowsDir = mkdtempSync(join(tmpdir(), 'gemello-flows-bad-'));
    writeFileSync(join(flowsDir, 'onboarding.flow.json'), readFileSync(broken('start', (d: any) => (d.tasks.collect.ddt = 'cliente')), 'utf8'));
    const r = await gemello(['actors'], { GEMELLO_FLOWS_DIR: flowsDir, GEMELLO_DATA_DIR: mkdtempSync(join(tmpdir(), 'gemello-data-')), KAFKA_BROKERS: '', DATABASE_URL: '', REDIS_URL: '' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('onboarding.flow.json $.tasks.collect.ddt: unknown DDT "cliente"');
    // What to fix, without a stack trace.
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
