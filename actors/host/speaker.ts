import { joinAudio } from '../../models/join-audio.ts';
import { createSentenceSplitter } from '../../models/sentences.ts';
import type { Sentence } from '../../models/sentences.ts';
import type { Speech } from '../ports.ts';
import type { Actor, HostContext } from './context.ts';

/**
 * The speech of one reply, sentence by sentence, while the reply streams: each finished
 * sentence is synthesised at once (through the audio cache, so a sentence said before costs
 * nothing) and published on the reply streams as an `audio` update, in order. Their audio
 * joined is the whole reply's (AudioReady), so a reply is synthesised once.
 */
export type Speaker = {
  promptSeq: number;
  /** The reply's next piece of text. */
  push(text: string): void;
  /** The reply is whole: what is left of it is its last sentence. */
  finish(finalText: string): void;
  /** The text was replaced (a new generation `gen`): what was spoken of the old one is dropped and the new one starts at index 0. */
  restart(gen: string, text: string): void;
  /** Stops at once: the synthesis under way is aborted and nothing more is published. */
  cancel(): void;
  readonly cancelled: boolean;
  /** The reply's text once finished (null before). */
  readonly text: string | null;
  /** Once every sentence is spoken: the whole reply's audio (null: a sentence failed or the clips cannot be joined; 'cancelled': stopped). */
  whole(): Promise<Speech | null | 'cancelled'>;
};

/** Replies whose sentences an actor keeps ready for their AudioReady at most (the state's own bound is 8 replies waiting for speech). */
const MAX_SPEAKERS = 8;

export function startSpeaker(ctx: HostContext, actor: Actor, promptSeq: number, gen: string): Speaker | null {
  const speech = ctx.speech;
  if (!speech || !ctx.streams) return null;
  const streams = ctx.streams;
  const voice = speech.voiceOf(actor.state);
  const conversationId = actor.id;
  let abort = new AbortController();
  let splitter = createSentenceSplitter();
  let index = 0;
  let clips: Array<Speech | string> = [];
  let failed = false;
  let finalText: string | null = null;
  let chain: Promise<void> = Promise.resolve();
  let done!: () => void;
  let finished = new Promise<void>((r) => (done = r));
  // How many sentences are queued or being spoken, so the last one can say it is last.
  let queued = 0;

  const speak = (s: Sentence, isLast: () => boolean) => {
    const signal = abort.signal;
    const i = index++;
    const myGen = gen;
    queued++;
    chain = chain.then(async () => {
      if (signal.aborted || failed) return;
      const chunk = (audioId: string, format: string, durationSec: number) =>
        streams.publish({ kind: 'audio', conversationId, promptSeq, gen: myGen, index: i, audioId, format, durationSec, offset: s.offset, text: s.text, last: isLast() });
      let sent = false;
      try {
        const stored = await speech.sink.store({
          text: s.text, voice, conversationId,
          synthesize: async () => {
            const t0 = performance.now();
            const clip = await speech.model.synthesize({ text: s.text, voice, signal });
            ctx.m.speechMs.observe(performance.now() - t0);
            return clip;
          },
          // New audio goes out at once, served from the reply streams while the audio cache writes it.
          synthesized: async (audioId, clip) => {
            if (signal.aborted) return;
            await streams.keepClip(audioId, clip);
            if (signal.aborted) return;
            sent = true;
            await chunk(audioId, clip.format, clip.durationSec);
          },
        });
        if (signal.aborted) return;
        // A clip from the cache is read only when the whole reply is joined, off the first audio's path.
        clips.push(stored.speech ?? stored.audioId);
        if (!sent) await chunk(stored.audioId, stored.format, stored.durationSec);
      } catch (err) {
        if (signal.aborted) return;
        // The sentences after it are not spoken; the whole reply's speech is synthesised on its own.
        failed = true;
        ctx.m.errors.inc({ kind: 'sentence_speech_failed' });
        ctx.logger.warn(`speaking a sentence of ${conversationId}/${promptSeq}: ${(err as Error).message}`);
      } finally {
        queued--;
      }
    });
  };

  const sp: Speaker = {
    promptSeq,
    push(text) {
      if (abort.signal.aborted || finalText !== null) return;
      for (const s of splitter.push(text)) speak(s, () => finalText !== null && queued === 1);
    },
    finish(text) {
      if (finalText !== null) return;
      finalText = text;
      const rest = splitter.flush();
      if (rest) speak(rest, () => true);
      chain.then(() => done());
    },
    restart(newGen, text) {
      abort.abort();
      abort = new AbortController();
      gen = newGen;
      splitter = createSentenceSplitter();
      index = 0;
      clips = [];
      failed = false;
      sp.push(text);
    },
    cancel() {
      abort.abort();
      done();
    },
    get cancelled() {
      return abort.signal.aborted;
    },
    get text() {
      return finalText;
    },
    async whole() {
      await finished;
      if (abort.signal.aborted) return 'cancelled';
      if (failed || finalText === null) return null;
      try {
        const loaded = await Promise.all(clips.map((c) => (typeof c === 'string' ? speech.sink.load(c) : c)));
        return loaded.every((c) => c !== null) ? joinAudio(loaded as Speech[]) : null;
      } catch {
        return null; // the whole text is synthesised instead
      }
    },
  };
  actor.speakers.set(promptSeq, sp);
  if (actor.speakers.size > MAX_SPEAKERS) {
    const [oldest, old] = actor.speakers.entries().next().value!;
    old.cancel();
    actor.speakers.delete(oldest);
  }
  return sp;
}

/** Stops every reply of the actor that is still being spoken (a barge-in: the user talks over the twin). */
export function silence(actor: Actor): void {
  for (const sp of actor.speakers.values()) sp.cancel();
  actor.speakers.clear();
}
