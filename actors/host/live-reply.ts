import type { Actor, Generation, HostContext } from './context.ts';
import { startSpeaker } from './speaker.ts';

/**
 * Starts a run of the model for the actor's prompt: its text goes to the reply streams as
 * deltas, coalesced so that at most one publish per `deltaFlushMs` leaves for a reply (the
 * first piece after a quiet spell goes at once, so a slow model's tokens add no wait). Deltas
 * are not events: ReplyGenerated (or ReplyStopped) stays the one truth. Not `live` (nobody
 * asked to follow it): nothing goes to the reply streams; the reply's speech, if any, is
 * still spoken sentence by sentence once its text is whole.
 */
export function startGeneration(ctx: HostContext, actor: Actor, promptSeq: number, live = true): Generation {
  const streams = live ? ctx.streams : null;
  const conversationId = actor.id;
  let published = 0;
  let lastFlush = -Infinity;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let chain: Promise<void> = Promise.resolve();
  let ended = false;
  const send = (u: Parameters<NonNullable<typeof streams>['publish']>[0]) => {
    if (!streams) return;
    // Published in call order (the streams keep it): a conversation's updates arrive in order
    // without waiting for each other; `chain` settles once every one so far has.
    const sent = streams.publish(u).catch((err) => {
      ctx.m.errors.inc({ kind: 'stream_publish_failed' });
      ctx.logger.warn(`streaming the reply of ${conversationId}: ${(err as Error).message}`);
    });
    chain = chain.then(() => sent);
  };
  const flush = () => {
    timer = null;
    if (g.text.length <= published) return;
    send({ kind: 'delta', conversationId, promptSeq, gen: g.gen, offset: published, text: g.text.slice(published) });
    published = g.text.length;
    lastFlush = performance.now();
  };
  const g: Generation = {
    promptSeq,
    gen: ctx.newId(),
    text: '',
    abort: new AbortController(),
    speaker: null,
    stopped: false,
    onText(delta) {
      if (g.stopped || ended) return;
      g.text += delta;
      g.speaker?.push(delta);
      if (!streams || timer) return;
      const wait = ctx.deltaFlushMs - (performance.now() - lastFlush);
      if (wait <= 0) flush();
      else timer = setTimeout(flush, wait);
    },
    async settle(finalText) {
      if (timer) clearTimeout(timer);
      timer = null;
      if (finalText !== null && finalText !== g.text) {
        if (finalText.startsWith(g.text)) {
          g.speaker?.push(finalText.slice(g.text.length));
          g.text = finalText;
        } else {
          // What streamed is not a prefix of the reply (the model's answer was read another
          // way at the end): start over, so the client's text is the reply's.
          g.gen = ctx.newId();
          g.text = finalText;
          published = 0;
          send({ kind: 'start', conversationId, promptSeq, gen: g.gen });
          g.speaker?.restart(g.gen, finalText);
        }
      }
      if (g.speaker) {
        // The reply's last sentence is spoken now; without a reply (failed, stopped) nothing more is.
        if (finalText !== null) g.speaker.finish(finalText);
        else {
          g.speaker.cancel();
          actor.speakers.delete(promptSeq);
        }
      }
      flush();
      await chain;
    },
    end() {
      if (ended) return;
      ended = true;
      if (timer) clearTimeout(timer);
      send({ kind: 'end', conversationId, promptSeq, gen: g.gen });
      if (actor.generation === g) actor.generation = null;
    },
  };
  send({ kind: 'start', conversationId, promptSeq, gen: g.gen });
  g.speaker = startSpeaker(ctx, actor, promptSeq, g.gen);
  actor.generation = g;
  return g;
}
