import { randomUUID } from 'node:crypto';
import { EffectError } from '../../actors/ports.ts';
import type { SpeechToText } from '../../actors/ports.ts';
import { MAX_PROMPT_CHARS } from '../protocol.ts';
import type { AudioEndFrame, AudioStartFrame } from '../protocol.ts';
import { addChunk, finish, GRACE_SEC, isRefusal, overdue, startUtterance } from '../voice/utterance.ts';
import type { Collecting, Finished, Refusal, VoiceLimits } from '../voice/utterance.ts';
import { echo } from './context.ts';
import type { SessionState } from './context.ts';
import { conversationFor, inOrder, meta, publish } from './requests.ts';

/** Where a kept utterance goes (GEMELLO_KEEP_VOICE): sealed with its conversation's key. */
export type VoiceKeeper = {
  keep(clip: { audioId: string; conversationId: string; format: string; contentType: string; bytes: Uint8Array; durationSec: number }): Promise<void>;
};

/** What a gateway does with speech: its transcriber (null: none configured), limits, and whether it keeps the audio. */
export type VoiceSettings = {
  stt: SpeechToText | null;
  limits: VoiceLimits;
  keep: VoiceKeeper | null;
  /** Said with `stt_unavailable`: how to turn speech to text on. */
  unavailable: string;
};

/** Transcriptions one socket may have under way; one more utterance is refused until one is done. */
export const MAX_TRANSCRIBING = 2;

/**
 * The utterance a socket is sending. `audio` null: refused (the client was told once); its
 * binary frames are dropped until `audio.end`.
 */
export type OpenUtterance = {
  frame: AudioStartFrame;
  twin: { id: string; name: string };
  audio: Collecting | null;
  timer: ReturnType<typeof setTimeout> | null;
};

const twinOf = (frame: AudioStartFrame) => ({ digitalTwinId: frame.digitalTwinId, digitalTwinName: frame.digitalTwinName });

/** `audio.start`: opens the socket's utterance (an open one is dropped, and said so). */
export function audioStart(s: SessionState, frame: AudioStartFrame): void {
  const voice = s.deps.voice;
  if (s.utterance) {
    // One refused (the client was told) is only waiting for its audio.end: nothing more to say of it.
    const told = s.utterance.audio === null;
    drop(s);
    if (!told) s.out.error('audio_sequence', 'audio.start while an utterance was open: that one is dropped, this one begins', echo(frame.requestId));
  }
  const twin = s.deps.catalog.find(frame.digitalTwinId, frame.digitalTwinName);
  const refuse = (code: string, message: string) => {
    s.m.utterances.inc({ outcome: 'refused' });
    s.utterance = { frame, twin: twin ? { id: twin.id, name: twin.name } : { id: '', name: '' }, audio: null, timer: null };
    s.out.error(code, message, { ...twinOf(frame), ...echo(frame.requestId) });
  };
  if (!voice?.stt) return refuse('stt_unavailable', voice?.unavailable ?? 'speech to text is not configured on this gateway');
  if (!twin) return refuse('twin_not_found', 'Digital twin not found');
  const audio = startUtterance(frame.format, frame.sampleRate, Date.now());
  if (isRefusal(audio)) return refuse(audio.code, audio.message);
  const u: OpenUtterance = { frame, twin: { id: twin.id, name: twin.name }, audio, timer: null };
  // A live stream cannot outrun the clock: one left open past its longest length is cut off.
  u.timer = setTimeout(() => {
    if (s.utterance !== u || !u.audio) return;
    const late = overdue(u.audio, voice.limits, Date.now());
    if (late) refused(s, u, late);
  }, (voice.limits.maxSeconds + GRACE_SEC) * 1000 + 50);
  u.timer.unref?.();
  s.utterance = u;
}

/** A binary frame: audio of the open utterance (true), or not part of one (false: the caller says `binary_frame`). */
export function audioBytes(s: SessionState, bytes: Uint8Array): boolean {
  const u = s.utterance;
  if (!u) return false;
  if (!u.audio) return true;
  const over = addChunk(u.audio, bytes, s.deps.voice!.limits);
  if (over) refused(s, u, over);
  return true;
}

/** `audio.end`: the utterance is transcribed, then sent as the prompt (or its failure recorded). */
export async function audioEnd(s: SessionState, frame: AudioEndFrame): Promise<void> {
  const u = s.utterance;
  if (!u) {
    s.out.error('audio_sequence', 'audio.end without audio.start', echo(frame.requestId));
    return;
  }
  if (u.timer) clearTimeout(u.timer);
  s.utterance = null;
  if (!u.audio) return; // refused already, and said so
  const voice = s.deps.voice!;
  const requestId = frame.requestId ?? u.frame.requestId;
  const done = finish(u.audio, voice.limits);
  if (isRefusal(done)) {
    s.m.utterances.inc({ outcome: 'refused' });
    s.out.error(done.code, done.message, { ...twinOf(u.frame), ...echo(requestId) });
    return;
  }
  if (s.transcribing >= MAX_TRANSCRIBING) {
    s.m.utterances.inc({ outcome: 'refused' });
    s.out.error('rate_limited', `${MAX_TRANSCRIBING} utterances of this socket are being transcribed; send the next once a transcript came`, { ...twinOf(u.frame), ...echo(requestId) });
    return;
  }
  const conversationId = conversationFor(s, u.twin, u.frame);
  // Frames of one socket to one conversation reach the log in the order sent: a prompt typed while
  // this utterance is transcribed goes after its transcript, not before.
  // Counted from here, waiting for its turn included: the bound holds the utterances this socket has in hand.
  const startedAt = u.audio.startedAt;
  s.transcribing++;
  try {
    await inOrder(s, conversationId, () => (s.out.closed ? Promise.resolve() : transcribeAndSend(s, voice, u.twin, done, { conversationId, requestId, startedAt })));
  } finally {
    s.transcribing--;
  }
}

/** Transcribes a finished utterance and sends its prompt (or its failure), in the conversation's turn. */
async function transcribeAndSend(s: SessionState, voice: VoiceSettings, twin: { id: string; name: string }, done: Finished, c: { conversationId: string; requestId: string | undefined; startedAt: number }): Promise<void> {
  const { conversationId, requestId } = c;
  const audioId = randomUUID();
  const t0 = performance.now();
  let heard: { text: string; durationSec: number | null } | EffectError;
  try {
    heard = await voice.stt!.transcribe({ bytes: done.bytes, format: done.format, contentType: done.contentType });
  } catch (err) {
    heard = err instanceof EffectError ? err : new EffectError('stt_failed', (err as Error).message, false);
  } finally {
    s.m.sttMs.observe(performance.now() - t0);
  }
  const durationSec = round(done.durationSec ?? (heard instanceof EffectError ? null : heard.durationSec) ?? (Date.now() - c.startedAt) / 1000);
  const base = meta(s, conversationId, requestId);
  const text = heard instanceof EffectError ? '' : heard.text.trim().slice(0, MAX_PROMPT_CHARS);
  if (heard instanceof EffectError || !text) {
    const { code, reason } = heard instanceof EffectError ? { code: heard.code, reason: heard.message } : { code: 'stt_empty', reason: 'no speech was heard in the utterance' };
    s.m.utterances.inc({ outcome: 'failed' });
    s.deps.logger.warn(`transcribing an utterance of ${conversationId} failed (${code}): ${reason}`);
    // Told at once, not when SpeechFailed comes back through the log: never silence, even with the log away.
    s.out.error('stt_failed', `the utterance could not be transcribed: ${reason}`, { digitalTwinId: twin.id, digitalTwinName: twin.name, conversationId, reason: code, audioId, ...echo(requestId) });
    await publish(s, { ...base, type: 'ReportSpeechFailure', data: { twin, audioId, format: done.format, durationSec, code, reason: reason.slice(0, 2000) } }, twin.id, { inTurn: true });
    return;
  }
  s.m.utterances.inc({ outcome: 'transcribed' });
  const kept = await keep(s, voice, { audioId, conversationId, done, durationSec });
  // A spoken prompt's reply is streamed: its speech starts with its first sentence.
  await publish(s, { ...base, type: 'SubmitPrompt', data: { twin, text, speech: { audioId, format: done.format, durationSec, kept }, stream: true } }, twin.id, { inTurn: true });
}

/** With GEMELLO_KEEP_VOICE, the audio is kept sealed; otherwise (and if keeping fails) it goes with this function's frame. */
async function keep(s: SessionState, voice: VoiceSettings, c: { audioId: string; conversationId: string; done: Finished; durationSec: number }): Promise<boolean> {
  if (!voice.keep) return false;
  try {
    await voice.keep.keep({ audioId: c.audioId, conversationId: c.conversationId, format: c.done.format, contentType: c.done.contentType, bytes: c.done.bytes, durationSec: c.durationSec });
    return true;
  } catch (err) {
    s.deps.logger.warn(`keeping the audio of ${c.conversationId} failed (the transcript goes on without it): ${(err as Error).message}`);
    return false;
  }
}

/**
 * A frame refused before it was read (rate limit): if it was an `audio.start`, its binary
 * frames are dropped quietly until `audio.end`, as for any refused utterance (the client was
 * told once), instead of each getting `binary_frame`; an `audio.end` drops its utterance.
 */
export function refuseIfUtterance(s: SessionState, text: string): void {
  const type = /"type"\s*:\s*"(audio\.start|audio\.end)"/.exec(text.slice(0, 200))?.[1];
  if (!type) return;
  drop(s);
  // A refused audio.end ends the utterance unheard: the client sends it again.
  if (type === 'audio.end') return;
  s.utterance = { frame: { type: 'audio.start', format: 'refused', digitalTwinId: 'refused' }, twin: { id: '', name: '' }, audio: null, timer: null };
}

/** The socket closed: an utterance being received is dropped with it. */
export function closeVoice(s: SessionState): void {
  drop(s);
}

function drop(s: SessionState): void {
  const u = s.utterance;
  if (!u) return;
  if (u.timer) clearTimeout(u.timer);
  if (u.audio) u.audio.chunks = [];
  s.utterance = null;
}

/** The utterance broke a limit: its bytes are dropped, the client is told once, the rest of it is ignored until audio.end. */
function refused(s: SessionState, u: OpenUtterance, why: Refusal): void {
  s.m.utterances.inc({ outcome: 'refused' });
  if (u.audio) u.audio.chunks = [];
  u.audio = null;
  s.out.error(why.code, why.message, { ...twinOf(u.frame), ...echo(u.frame.requestId) });
}

const round = (sec: number) => Math.round(sec * 1000) / 1000;
