import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compileFlow } from '../flows/compile.ts';
import type { CompiledFlow, FlowEnvironment, FlowError } from '../flows/compile.ts';
import { createFlowRegistry } from '../flows/registry.ts';
import type { FlowRegistry } from '../flows/registry.ts';
import type { FlowsConfig } from './config.ts';

/** Thrown at start when a flow of GEMELLO_FLOWS_DIR does not compile: the message lists every error with its file and path. */
export class FlowsInvalid extends Error {
  readonly code = 'flows_invalid';
}

export const flowEnvironment = (c: FlowsConfig): FlowEnvironment => ({ backends: Object.keys(c.backends), email: c.emailWebhook !== null, sms: c.smsWebhook !== null });

/** Reads and compiles a flow file; its errors, or the compiled flow. */
export function compileFile(file: string, env: FlowEnvironment): { ok: true; flow: CompiledFlow } | { ok: false; errors: FlowError[] } {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    return { ok: false, errors: [{ path: '$', message: `cannot read the file as JSON: ${(err as Error).message}` }] };
  }
  return compileFlow(raw, env);
}

/** Compiles every `*.json` of GEMELLO_FLOWS_DIR (none when unset); any error stops the start. */
export function loadFlows(c: FlowsConfig): FlowRegistry {
  const env = flowEnvironment(c);
  const flows: CompiledFlow[] = [];
  const problems: string[] = [];
  if (c.dir) {
    let files: string[];
    try {
      files = readdirSync(c.dir).filter((f) => f.endsWith('.json')).sort();
    } catch (err) {
      throw new FlowsInvalid(`GEMELLO_FLOWS_DIR: cannot read ${c.dir}: ${(err as Error).message}`);
    }
    for (const f of files) {
      const r = compileFile(join(c.dir, f), env);
      if (!r.ok) for (const e of r.errors) problems.push(`${f} ${e.path}: ${e.message}`);
      else if (flows.some((x) => x.id === r.flow.id)) problems.push(`${f} $.id: flow "${r.flow.id}" is defined twice`);
      else flows.push(r.flow);
    }
  }
  if (problems.length) throw new FlowsInvalid(`the flows in ${c.dir} do not compile:\n  ${problems.join('\n  ')}`);
  return createFlowRegistry(flows, env);
}
