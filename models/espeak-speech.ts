import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { EffectError, type Speech, type SpeechModel } from '../actors/ports.ts';
import { espeakVoice } from './espeak-voices.ts';
import { clip } from './text.ts';
import { parseWav } from './wav.ts';

/** Options for createEspeakSpeechModel. */
export type EspeakSpeechOptions = {
  /** Default `espeak-ng`, looked up on PATH. */
  binary?: string | undefined;
  /** Longer text is cut; default 4096 characters (about four minutes of speech). */
  maxChars?: number | undefined;
  /** The process is killed after this long; default 30 s. */
  timeoutMs?: number | undefined;
};

/** Keeps a chatty stderr from growing without bound. */
const STDERR_LIMIT = 2_000;

/** A SpeechModel that runs the local espeak-ng and returns its WAV output. */
export function createEspeakSpeechModel(options: EspeakSpeechOptions = {}): SpeechModel {
  const binary = options.binary ?? 'espeak-ng';
  const maxChars = options.maxChars ?? 4096;
  const timeoutMs = options.timeoutMs ?? 30_000;

  return {
    name: 'espeak-ng',
    async synthesize({ text, voice, signal }): Promise<Speech> {
      const bytes = await run(binary, espeakVoice(voice), clip(text, maxChars), timeoutMs, signal);
      let durationSec: number;
      try {
        durationSec = parseWav(bytes).durationSec;
      } catch (err) {
        throw new EffectError('speech_failed', `${binary} did not produce WAV audio: ${(err as Error).message}`, false);
      }
      return { bytes, format: 'wav', contentType: 'audio/wav', durationSec };
    },
  };
}

/**
 * Runs espeak-ng without a shell. The text goes in on stdin, never as an argument,
 * so a reply that starts with "-" cannot be read as an option.
 */
function run(binary: string, voice: string, text: string, timeoutMs: number, signal?: AbortSignal): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const fail = (reason: string) => reject(new EffectError('speech_failed', reason, false));
    if (signal?.aborted) return fail(`${binary} was cancelled before it started`);
    const child = spawn(binary, ['--stdout', '-b', '1', '-v', voice, '--stdin'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    let stopped: string | null = null;
    const stop = (why: string) => {
      stopped ??= why;
      child.kill('SIGKILL');
    };
    const timer = setTimeout(() => stop(`${binary} took longer than ${timeoutMs} ms`), timeoutMs);
    const onAbort = () => stop(`${binary} was cancelled`);
    signal?.addEventListener('abort', onAbort, { once: true });
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };

    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < STDERR_LIMIT) stderr += chunk.toString('utf8');
    });
    child.stdin.on('error', () => { /* the process died early; 'close' reports why */ });
    child.on('error', (err: NodeJS.ErrnoException) => {
      done();
      fail(err.code === 'ENOENT'
        ? `${binary} is not installed or not on PATH (apt-get install espeak-ng)`
        : `${binary} could not start: ${err.message}`);
    });
    child.on('close', (code, killedBy) => {
      done();
      if (stopped) return fail(stopped);
      if (code !== 0) {
        const detail = stderr.trim().slice(0, 300) || `signal ${killedBy ?? 'none'}`;
        return fail(`${binary} -v ${voice} exited with code ${code}: ${detail}`);
      }
      resolve(new Uint8Array(Buffer.concat(out)));
    });
    child.stdin.end(text, 'utf8');
  });
}

/** Whether `binary` is an executable file, either as given (with a slash) or in one of PATH's directories. */
export function espeakAvailable(binary = 'espeak-ng', path = ''): boolean {
  const candidates = binary.includes('/') ? [binary] : path.split(delimiter).filter(Boolean).map((dir) => join(dir, binary));
  return candidates.some((file) => {
    try {
      accessSync(file, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}
