/**
 * Secrets from files: for each variable below, `NAME_FILE=/run/secrets/x` sets `NAME` to that
 * file's contents (one trailing newline dropped), as Docker and Kubernetes secrets are mounted.
 * Only these names: a setting that is itself a path (GEMELLO_TWINS_FILE) must stay one.
 */
export const SECRET_VARIABLES = [
  'DATABASE_URL',
  'REDIS_URL',
  'OPENAI_API_KEY',
  'GEMELLO_API_KEYS',
  'GEMELLO_JWT_SECRET',
  'GEMELLO_MASTER_KEY',
  'OTEL_EXPORTER_OTLP_HEADERS',
] as const;

/** Thrown when a secret file is named twice or cannot be read; the message says which. */
export class SecretFileError extends Error {
  readonly code = 'bad_config';
}

/**
 * The environment with every `NAME_FILE` of SECRET_VARIABLES read into `NAME`. `read` is the
 * entry file's file reader, so this module touches no runtime API itself.
 */
export function withSecretFiles(env: Record<string, string | undefined>, read: (path: string) => string): Record<string, string | undefined> {
  const out = { ...env };
  for (const name of SECRET_VARIABLES) {
    const path = env[`${name}_FILE`];
    if (!path) continue;
    if (env[name]) throw new SecretFileError(`${name} and ${name}_FILE are both set: set one of them`);
    let text: string;
    try {
      text = read(path);
    } catch (err) {
      throw new SecretFileError(`${name}_FILE: cannot read ${path}: ${(err as Error).message}`);
    }
    out[name] = text.replace(/\r?\n$/, '');
  }
  return out;
}
