import { describeFlow } from '../flows/compile.ts';
import type { Config } from '../runtime/config.ts';
import { compileFile, flowEnvironment } from '../runtime/flows.ts';
import { plural } from './wording.ts';

/** `gemello flows compile <file>`: 0 and the task list when it compiles; 1 and every error with its path when not. */
export function flowsCommand(args: string[], config: Config): number {
  const [sub, file] = args;
  if (sub !== 'compile' || !file) {
    console.error('usage: gemello flows compile <file>');
    return 2;
  }
  const r = compileFile(file, flowEnvironment(config.flows));
  if (r.ok) {
    console.log(describeFlow(r.flow));
    return 0;
  }
  console.error(`${file}: ${plural(r.errors.length, 'error')}`);
  for (const e of r.errors) console.error(`  ${e.path}: ${e.message}`);
  return 1;
}
