// `npm start` (main.ts): gateway, actor host and projections in one Node process.
import { readFileSync } from 'node:fs';
import { SecretFileError, withSecretFiles } from './file-env.ts';
import { exitOnStartError } from './fatal.ts';
import { runNode } from './node.ts';
import { ALL_ROLES } from './wire.ts';

try {
  // Secrets mounted as files (NAME_FILE) become NAME before anything reads the environment.
  Object.assign(process.env, withSecretFiles(process.env, (path) => readFileSync(path, 'utf8')));
} catch (err) {
  if (!(err instanceof SecretFileError)) throw err;
  console.error(`gemello: ${err.message}`);
  process.exit(2);
}
await runNode(ALL_ROLES).catch(exitOnStartError);
