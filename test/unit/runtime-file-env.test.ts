// Secrets mounted as files: NAME_FILE gives NAME its value, for the secret settings only.
import { describe, expect, it } from 'vitest';
import { SecretFileError, withSecretFiles } from '../../runtime/file-env.ts';

const files: Record<string, string> = { '/run/secrets/db': 'postgres://u:p@db/gemello\n', '/run/secrets/key': 'sk-1' };
const read = (path: string) => {
  if (!(path in files)) throw new Error('ENOENT: no such file');
  return files[path]!;
};

describe('withSecretFiles', () => {
  it('reads NAME_FILE into NAME, dropping the one trailing newline editors add', () => {
    const env = withSecretFiles({ DATABASE_URL_FILE: '/run/secrets/db', OPENAI_API_KEY_FILE: '/run/secrets/key', PORT: '3000' }, read);
    expect(env).toMatchObject({ DATABASE_URL: 'postgres://u:p@db/gemello', OPENAI_API_KEY: 'sk-1', PORT: '3000' });
  });

  it('leaves settings that are paths themselves alone', () => {
    expect(withSecretFiles({ GEMELLO_TWINS_FILE: '/etc/twins.json' }, read)).toEqual({ GEMELLO_TWINS_FILE: '/etc/twins.json' });
  });

  it('refuses NAME and NAME_FILE together, and says which file it cannot read', () => {
    expect(() => withSecretFiles({ DATABASE_URL: 'x', DATABASE_URL_FILE: '/run/secrets/db' }, read)).toThrow(/DATABASE_URL and DATABASE_URL_FILE are both set/);
    expect(() => withSecretFiles({ REDIS_URL_FILE: '/run/secrets/nope' }, read)).toThrow(SecretFileError);
    expect(() => withSecretFiles({ REDIS_URL_FILE: '/run/secrets/nope' }, read)).toThrow(/REDIS_URL_FILE: cannot read \/run\/secrets\/nope/);
  });
});
