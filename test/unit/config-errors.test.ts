// A configuration with several wrong variables is told all at once, each by name, before anything starts.
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../runtime/config.ts';

describe('loadConfig', () => {
  it('names every variable that is wrong, with what it takes', () => {
    const load = () => loadConfig({ GEMELLO_MAX_ACTORS: '2', GEMELLO_TAIL_MAX_EVENTS: '5' });
    expect(load).toThrow(ConfigError);
    expect(load).toThrow('GEMELLO_MAX_ACTORS: Too small: expected number to be >=10; GEMELLO_TAIL_MAX_EVENTS: Too small: expected number to be >=100');
    expect(loadConfig({ GEMELLO_MAX_ACTORS: '10', GEMELLO_TAIL_MAX_EVENTS: '100' })).toMatchObject({ maxActors: 10 });
  });

  it('names the lists and the master key that are wrong beside the rest, all in one start', () => {
    expect(() => loadConfig({ PORT: 'abc', GEMELLO_MASTER_KEY: 'short', GEMELLO_BACKENDS: 'crm', GEMELLO_API_KEYS: 'k1:alice,k1:bob' })).toThrow(
      'PORT: a whole number; GEMELLO_API_KEYS: a key is given twice (for alice and bob): each key names one principal; GEMELLO_BACKENDS: "crm" is not name=http(s)://url (e.g. crm=http://127.0.0.1:8080); GEMELLO_MASTER_KEY: must hold 32 bytes as base64 (44 characters) or hex (64 characters); make one with: openssl rand -base64 32',
    );
  });

  it('refuses what would otherwise be read as something else: blanks, hex, ports past 65535, URLs that are not, switches it does not know, model timeouts that are not numbers', () => {
    const problem = (env: Record<string, string>) => {
      try {
        loadConfig(env);
        return null;
      } catch (err) {
        return (err as Error).message;
      }
    };
    expect(problem({ PORT: ' ' })).toBe('PORT: a whole number');
    expect(problem({ PORT: '0x10' })).toBe('PORT: a whole number');
    expect(problem({ PORT: '70000' })).toMatch(/^PORT: Too big/);
    expect(problem({ GEMELLO_RETENTION_DAYS: ' ' })).toBe('GEMELLO_RETENTION_DAYS: a number');
    expect(problem({ DATABASE_URL: 'notaurl' })).toBe('DATABASE_URL: a URL starting with postgres:// or postgresql://');
    expect(problem({ REDIS_URL: '127.0.0.1:6379' })).toBe('REDIS_URL: a URL starting with redis:// or rediss://');
    expect(problem({ KAFKA_BROKERS: ' , ' })).toMatch(/^KAFKA_BROKERS: at least one broker/);
    expect(problem({ DATABASE_SCHEMA: 'a'.repeat(44) })).toMatch(/^DATABASE_SCHEMA: at most 43 characters/);
    expect(problem({ GEMELLO_MODEL_TIMEOUT_MS: 'abc', GEMELLO_STT_TIMEOUT_MS: '-5', GEMELLO_OFFLINE_WORD_MS: '1.5' })).toBe('GEMELLO_MODEL_TIMEOUT_MS: a whole number; GEMELLO_STT_TIMEOUT_MS: a whole number; GEMELLO_OFFLINE_WORD_MS: a whole number');
    expect(problem({ GEMELLO_SPEECH: 'false' })).toMatch(/^GEMELLO_SPEECH: .*"on"\|"off"\|"espeak"/);
    expect(problem({ GEMELLO_STT: 'no' })).toMatch(/^GEMELLO_STT: /);
    expect(problem({ GEMELLO_API_KEYS: 'k1:alice,k1:bob' })).toBe('GEMELLO_API_KEYS: a key is given twice (for alice and bob): each key names one principal');
    expect(problem({ GEMELLO_API_KEYS: 'k1:alice,k2:' })).toBe('GEMELLO_API_KEYS: entry 2 needs a key and a name (key:name)');
    expect(loadConfig({ GEMELLO_API_KEYS: 'k1:alice, k2 , k3: carol' }).auth?.apiKeys).toEqual(new Map([['k1', 'alice'], ['k2', 'k2'], ['k3', 'carol']]));
    expect(problem({ GEMELLO_LOG_QUIET: 'maybe' })).toMatch(/^GEMELLO_LOG_QUIET: /);
    expect(loadConfig({ GEMELLO_LOG_QUIET: 'Yes' }).quiet).toBe(true);
    expect(loadConfig({ GEMELLO_LOG_QUIET: '0' }).quiet).toBe(false);
    expect(loadConfig({ GEMELLO_KEEP_VOICE: 'ON' }).voice.keep).toBe(true);
    // Checked at start whether or not a model is configured.
    expect(problem({ GEMELLO_MODEL_TRANSPORT: 'curl' })).toMatch(/^GEMELLO_MODEL_TRANSPORT: .*"gemello"\|"fetch"/);
    expect(problem({ GEMELLO_STT_LANGUAGE: 'Italian' })).toBe('GEMELLO_STT_LANGUAGE: a two-letter ISO-639-1 language code, such as it or en');
    // What the roles are built from: the checked values, read once.
    expect(loadConfig({ OPENAI_API_KEY: ' sk-x ', GEMELLO_STT_RETRIES: '3', GEMELLO_SPEECH_SENTENCES: 'OFF', GEMELLO_MODEL_TRANSPORT: 'Fetch' }).models).toMatchObject({ apiKey: 'sk-x', baseURL: null, transport: 'fetch', speakSentences: false, stt: { on: true, maxRetries: 3, timeoutMs: 15_000 } });
    expect(problem({ DATABASE_SCHEMA: 'Wtd-X' })).toBe('DATABASE_SCHEMA: lower-case letters, digits and _, starting with a letter or _');
    // What the README shows is taken as written.
    expect(problem({ PORT: '8080', GEMELLO_RETENTION_DAYS: '0.5', DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/test', REDIS_URL: 'redis://127.0.0.1:6379', KAFKA_BROKERS: '127.0.0.1:9092, 127.0.0.1:9093', GEMELLO_SPEECH: 'Espeak', GEMELLO_STT: 'off', GEMELLO_MODEL_TIMEOUT_MS: '30000' })).toBeNull();
  });
});
