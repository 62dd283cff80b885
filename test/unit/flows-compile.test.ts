import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compileFlow, describeFlow } from '../../flows/compile.ts';

const reference = () => JSON.parse(readFileSync(new URL('../../flows/examples/onboarding.flow.json', import.meta.url), 'utf8'));
const env = { backends: ['crm'], email: true, sms: false };
const errorsOf = (def: unknown, e = env) => {
  const r = compileFlow(def, e);
  if (r.ok) throw new Error('expected errors');
  return r.errors;
};

describe('the flow compiler', () => {
  it('compiles the reference definition into a flat task list with a version hash', () => {
    const r = compileFlow(reference(), env);
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    expect(r.flow.tasks.map((t) => t.id)).toEqual(['welcome', 'collect', 'adult', 'register', 'minor', 'mail', 'operator', 'bye']);
    expect(r.flow.version).toMatch(/^[0-9a-f]{16}$/);
    expect(describeFlow(r.flow)).toContain('register  backendCall POST crm/customers as crm → mail, on error → operator');
  });

  it('gives the same version to the same definition written differently, and another to a changed one', () => {
    const a = compileFlow(reference(), env);
    const reordered = Object.fromEntries(Object.entries(reference()).reverse());
    const b = compileFlow(reordered, env);
    const changed = reference();
    changed.tasks.welcome.text = 'Ciao!';
    const c = compileFlow(changed, env);
    expect(a.ok && b.ok && c.ok).toBe(true);
    if (a.ok && b.ok && c.ok) {
      expect(b.flow.version).toBe(a.flow.version);
      expect(c.flow.version).not.toBe(a.flow.version);
    }
  });

  it.each([
    ['an unknown task', (d: any) => (d.tasks.register.onError = 'operatore'), [{ path: '$.tasks.register.onError', message: 'unknown task "operatore"' }, { path: '$.tasks.operator', message: 'task "operator" is unreachable from start "welcome"' }]],
    ['an unreachable task', (d: any) => (d.tasks.orphan = { type: 'say', text: 'never said', next: 'bye' }), [{ path: '$.tasks.orphan', message: 'task "orphan" is unreachable from start "welcome"' }]],
    ['a backend not configured', (d: any) => (d.tasks.register.backend = 'erp'), [{ path: '$.tasks.register.backend', message: 'backend "erp" is not configured (GEMELLO_BACKENDS; configured: crm)' }]],
    ['a template naming memory no task fills', (d: any) => (d.tasks.mail.text = 'Telefono {{customer.phone}}'), [{ path: '$.tasks.mail.text', message: 'template {{customer.phone}} names memory that no earlier task fills' }]],
    ['an unknown DDT', (d: any) => (d.tasks.collect.ddt = 'client'), [{ path: '$.tasks.collect.ddt', message: 'unknown DDT "client"' }]],
  ])('reports %s at its JSON path', (_what, breakIt, expected) => {
    const def = reference();
    breakIt(def);
    const errors = errorsOf(def);
    expect(errors).toEqual(expect.arrayContaining(expected));
    // Only what follows from the break (an unknown DDT also leaves its memory unfilled).
    expect(errors.every((e) => expected.some((x) => x.path === e.path) || e.message.includes('no earlier task fills'))).toBe(true);
  });

  it('reports every error at once', () => {
    const def = reference();
    def.tasks.orphan = { type: 'say', text: 'never said', next: 'bye' };
    def.tasks.register.backend = 'erp';
    def.tasks.mail.text = 'Codice {{crm.id}}, telefono {{customer.phone}}';
    def.ddts.customer.nodes[0].confirm = 'Ti chiami {{value}}? Nato il {{customer.birthDate}}?';
    expect(errorsOf(def).map((e) => e.path).sort()).toEqual(['$.ddts.customer.nodes[0].confirm', '$.tasks.mail.text', '$.tasks.orphan', '$.tasks.register.backend']);
  });

  it('names what a flow file means by what it says: "constructor" is an unknown task, "toString" an unknown DDT, {{a-b}} not a placeholder', () => {
    const def = reference();
    def.tasks.welcome.next = 'constructor';
    def.tasks.collect.ddt = 'toString';
    expect(errorsOf(def)).toEqual(expect.arrayContaining([
      { path: '$.tasks.welcome.next', message: 'unknown task "constructor"' },
      { path: '$.tasks.collect.ddt', message: 'unknown DDT "toString"' },
    ]));
    const typo = reference();
    typo.tasks.bye.text = 'Grazie {{customer.full-name}}';
    expect(errorsOf(typo)).toEqual([{ path: '$.tasks.bye.text', message: expect.stringMatching(/^\{\{customer\.full-name\}\} is not a placeholder/) }]);
  });

  it('refuses a cycle with no way out, and accepts one with an exit', () => {
    const loop = { id: 'l', start: 'a', tasks: { a: { type: 'say', text: 'a', next: 'b' }, b: { type: 'say', text: 'b', next: 'a' } } };
    expect(errorsOf(loop)).toEqual([{ path: '$.tasks.a', message: 'cycle without an exit: a → b → a never reaches an end or a transfer' }]);
    const exit = {
      id: 'l', start: 'a', tasks: {
        a: { type: 'getData', ddt: 'd', next: 'b' },
        b: { type: 'condition', when: { var: 'd.n', op: '>', value: 3 }, then: 'z', else: 'a' },
        z: { type: 'end' },
      }, ddts: { d: { nodes: [{ name: 'n', type: 'number', ask: 'n?' }] } },
    };
    expect(compileFlow(exit, env).ok).toBe(true);
  });

  it('checks a template only against memory filled on some way to it (a backend result not on its onError branch)', () => {
    const def = reference();
    def.tasks.operator.text = 'Il tuo codice è {{crm.id}}';
    expect(errorsOf(def)).toEqual([{ path: '$.tasks.operator.text', message: 'template {{crm.id}} names memory that no earlier task fills' }]);
  });

  it('says what the shape is wrong with, at its path', () => {
    const def = reference();
    def.tasks.welcome.type = 'shout';
    def.ddts.customer.nodes[1].type = 'colour';
    const paths = errorsOf(def).map((e) => e.path);
    expect(paths).toEqual(expect.arrayContaining(['$.tasks.welcome.type', '$.ddts.customer.nodes[1].type']));
  });

  it('refuses a condition that would compare with nothing: a misspelt key, a missing value, an unknown operator, naming what is wrong', () => {
    const at = (when: unknown) => {
      const def = reference();
      def.tasks.adult.when = when;
      return errorsOf(def).map((e) => `${e.path} ${e.message}`);
    };
    // A misspelt "value" used to compile, and the flow compared the date with null: every user took the adult branch.
    expect(at({ var: 'customer.birthDate', op: '<=', vaule: '2008-12-01' })).toEqual(expect.arrayContaining([expect.stringMatching(/^\$\.tasks\.adult\.when Unrecognized key: "vaule"/), expect.stringMatching(/^\$\.tasks\.adult\.when\.value a comparison needs a value/)]));
    expect(at({ var: 'customer.birthDate', op: '<' })).toEqual([expect.stringMatching(/when\.value a comparison needs a value/)]);
    expect(at({ all: [{ var: 'customer.birthDate', op: 'exists' }, { var: 'customer.birthDate', op: '==' }] })).toEqual([expect.stringMatching(/when\.all\[1\]\.value a comparison needs a value/)]);
    expect(at({ var: 'customer.birthDate', op: '~=', value: 1 })).toEqual([expect.stringMatching(/when op: .*"==".*"exists"/)]);
    expect(at('adults only')).toEqual([expect.stringMatching(/when a condition is/)]);
  });

  it('needs the webhooks a flow sends through', () => {
    expect(errorsOf(reference(), { backends: ['crm'], email: false, sms: false })).toEqual([
      { path: '$.tasks.mail.type', message: 'sendEmail needs GEMELLO_EMAIL_WEBHOOK, which is not configured' },
    ]);
  });
});

describe('the reference definition', () => {
  it('is kept in the repository as the shared folder has it', () => {
    // The shared folder sits beside the checkout (../shared) or beside a worktree's parent (../../shared).
    const copy = readFileSync(new URL('../../flows/examples/onboarding.flow.json', import.meta.url), 'utf8');
    const shared = ['../../../shared/examples/onboarding.flow.json', '../../../../shared/examples/onboarding.flow.json']
      .map((p) => new URL(p, import.meta.url))
      .find((u) => existsSync(u));
    if (shared) expect(copy).toBe(readFileSync(shared, 'utf8'));
  });
});
