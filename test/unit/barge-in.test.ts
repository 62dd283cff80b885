import { describe, expect, it } from 'vitest';
import { decide } from '../../actors/decide.ts';
import type { Command } from '../../actors/commands.ts';
import { fold, initialState } from '../../actors/state.ts';
import type { ConversationState } from '../../actors/state.ts';
import { envelope } from '../../events/codec.ts';

// Barge-in from playback: the user talks over a reply whose speech is still being made.
const twin = { id: 'warren-buffett-001', name: 'Warren Buffett' };
let n = 0;
const meta = () => ({ commandId: `cmd-${++n}`, conversationId: 'c1', correlationId: null, principal: null, traceparent: null, issuedAt: '2026-01-01T00:00:00.000Z' });
const prompt: Command = { ...meta(), type: 'SubmitPrompt', data: { twin, text: 'tell me' } };
const reply: Command = { type: 'RecordReply', promptSeq: 2, text: 'Price is what you pay. Value is what you get.', model: 'm', tokens: { prompt: 1, completion: 1, total: 2 }, latencyMs: 1, audio: true };
const stop = (heardChars: number | null): Command => ({ ...meta(), type: 'StopReply', data: { heardChars } });

function run(...commands: Command[]): ConversationState {
  let state = initialState('c1');
  for (const c of commands) {
    const events = decide(c, state);
    state = fold('c1', envelope('c1', state.seq, events, { causationId: null, correlationId: null, traceparent: null, now: new Date(0), newId: () => crypto.randomUUID() }), state);
  }
  return state;
}

describe('barge-in from playback', () => {
  it('keeps what was heard and ends the reply\'s speech when it was still being made', () => {
    const speaking = run(prompt, reply);
    expect(speaking.pendingAudio).toEqual([3]);
    const events = decide(stop(22), speaking);
    expect(events.map((e) => e.type)).toEqual(['ReplyStopped', 'AudioFailed']);
    expect(events[1]!.data).toMatchObject({ replySeq: 3, reason: 'stopped by the user while it was spoken' });
    const after = run(prompt, reply, stop(22));
    expect(after.pendingAudio).toEqual([]);
    expect(after.messages.at(-1)).toMatchObject({ role: 'assistant', content: 'Price is what you pay.' });
    // A late AudioReady for it is not recorded.
    expect(decide({ type: 'RecordAudio', replySeq: 3, audioId: 'a', format: 'wav', durationSec: 1, bytes: 1, voice: 'v' }, after)).toEqual([]);
  });

  it('only trims the history once its speech is out', () => {
    const spoken = run(prompt, reply, { type: 'RecordAudio', replySeq: 3, audioId: 'a', format: 'wav', durationSec: 1, bytes: 1, voice: 'v' });
    expect(decide(stop(5), spoken).map((e) => e.type)).toEqual(['ReplyStopped']);
  });
});
