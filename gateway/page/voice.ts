/**
 * The chat page's voice (see gateway/page.ts): `createVoice(api)` is called by the chat script.
 *
 * - Hold to talk (pointer, or Space/Enter on the button): the microphone is recorded with
 *   MediaRecorder and sent while the user talks: `audio.start` (the recorder's MIME type as
 *   `format`, `stream: true`), one binary frame per 200 ms of audio, `audio.end` on release.
 * - The reply's `audio.chunk` frames are played one after the other, in index order, as they
 *   come (the whole reply's `audio` frame then only gets its controls, it does not play again).
 * - Talking over the twin (pressing Talk while it speaks or its reply streams) sends `stop`
 *   with `heardChars`: the chunk playing's `offset` + its text's length × the part of it
 *   played (the whole of the chunks played before), then records the new utterance.
 * `#voice` says what is going on; its `data-played` counts the chunks that started playing.
 * (No backticks and no dollar-brace: it lives in a template.)
 */
export const VOICE_SCRIPT = String.raw`
function createVoice(api) {
  'use strict';
  const talk = document.getElementById('talk');
  const status = document.getElementById('voice');
  const player = new Audio();
  const spokenTo = new Set();   // conversations whose replies came as chunks (their whole audio is not played again)
  const silenced = new Map();   // conversation id → the highest prompt seq stopped (its late chunks are dropped)
  let rec = null;               // the utterance being recorded
  let speaking = null;          // { conversationId, promptSeq, queue, playing, heard, next }
  let played = 0;

  function say(text) {
    status.textContent = text;
    status.dataset.played = String(played);
  }
  /** Nothing is played: say whether the microphone is on. */
  function quiet() { say(rec ? 'listening…' : ''); }

  /** How much of the reply being spoken the user has heard, in characters of its text. */
  function heardChars() {
    if (!speaking) return null;
    const c = speaking.playing;
    if (!c) return speaking.heard;
    const d = isFinite(player.duration) && player.duration > 0 ? player.duration : c.durationSec;
    const part = d > 0 ? Math.min(1, player.currentTime / d) : 0;
    return Math.round(c.offset + c.text.length * part);
  }

  function busy() { return !!(speaking && (speaking.playing || speaking.queue.length)); }

  function playNext() {
    if (!speaking || speaking.playing) return;
    const c = speaking.queue.shift();
    if (!c) { quiet(); return; }
    speaking.playing = c;
    player.src = api.withToken(c.audioUrl);
    player.play().then(() => {
      played++;
      say('speaking (sentence ' + (c.index + 1) + ')');
    }).catch((err) => {
      if (speaking && speaking.playing === c) { speaking.playing = null; say('could not play the audio: ' + err.message); }
    });
  }

  player.addEventListener('ended', () => {
    if (!speaking || !speaking.playing) return;
    const c = speaking.playing;
    speaking.heard = c.offset + c.text.length;
    speaking.playing = null;
    playNext();
  });

  /** Silence: what plays stops and what is queued goes. */
  function hush() {
    if (speaking) { speaking.queue = []; speaking.playing = null; }
    player.pause();
    player.removeAttribute('src');
    quiet();
  }

  function chunk(view, f) {
    spokenTo.add(f.conversationId);
    if (f.promptSeq <= (silenced.get(f.conversationId) || 0)) return;
    const s = speaking;
    const same = s && s.conversationId === f.conversationId && s.promptSeq === f.promptSeq;
    if (s && s.conversationId === f.conversationId && s.promptSeq > f.promptSeq) return; // an older reply's late chunk
    // A new reply, or the same one from index 0 again (its actor host was replaced): start over.
    if (!same || f.index < s.next) {
      if (same || busy()) hush();
      speaking = { conversationId: f.conversationId, promptSeq: f.promptSeq, queue: [], playing: null, heard: 0, next: 0 };
    }
    speaking.next = f.index + 1;
    speaking.queue.push(f);
    playNext();
  }

  /** A reply was stopped (here or from another tab): its speech stops too. */
  function stopped(f) {
    silenced.set(f.conversationId, Math.max(silenced.get(f.conversationId) || 0, f.promptSeq));
    if (speaking && speaking.conversationId === f.conversationId && speaking.promptSeq <= f.promptSeq) hush();
  }

  /** The user talks over the twin: stop the reply with what was heard of it. */
  function bargeIn(view) {
    if (!view.conversationId) return;
    const mine = speaking && speaking.conversationId === view.conversationId;
    if (!(mine && busy()) && !view.streaming) return;
    // Heard: what was played; a reply with no audio yet was only read: what was shown of it.
    const heard = mine && (busy() || speaking.heard > 0) ? heardChars() : view.streaming ? view.streaming.text.length : null;
    api.stop(view, heard);
    if (mine) silenced.set(view.conversationId, Math.max(silenced.get(view.conversationId) || 0, speaking.promptSeq));
    hush();
  }

  async function press() {
    const view = api.current();
    if (rec || !view || !api.open()) return;
    bargeIn(view);
    const mine = rec = { recorder: null, chain: Promise.resolve(), released: false };
    talk.setAttribute('aria-pressed', 'true');
    say('listening…');
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (err) {
      rec = null;
      talk.setAttribute('aria-pressed', 'false');
      say('no microphone: ' + err.message);
      return;
    }
    if (mine.released) { for (const t of stream.getTracks()) t.stop(); quiet(); return; }
    const types = ['audio/webm;codecs=opus', 'audio/webm', 'audio/ogg;codecs=opus', 'audio/mp4'];
    const type = types.find((t) => window.MediaRecorder && MediaRecorder.isTypeSupported(t)) || '';
    const recorder = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
    mine.recorder = recorder;
    const requestId = api.newRequestId();
    const start = { type: 'audio.start', digitalTwinId: view.id, format: recorder.mimeType || type || 'audio/webm', requestId, stream: true };
    if (view.conversationId) start.conversationId = view.conversationId;
    api.send(start);
    api.listening(view, requestId);
    // In order: each piece's bytes are read asynchronously, so they are chained.
    recorder.ondataavailable = (e) => {
      if (e.data && e.data.size) mine.chain = mine.chain.then(() => e.data.arrayBuffer()).then((b) => api.sendBinary(b));
    };
    recorder.onstop = () => {
      mine.chain.then(() => {
        api.send({ type: 'audio.end', requestId });
        for (const t of stream.getTracks()) t.stop();
      });
    };
    recorder.start(200);
  }

  function release() {
    const mine = rec;
    if (!mine) return;
    rec = null;
    mine.released = true;
    talk.setAttribute('aria-pressed', 'false');
    if (mine.recorder && mine.recorder.state !== 'inactive') mine.recorder.stop();
    if (!busy()) quiet();
  }

  talk.addEventListener('pointerdown', (e) => { e.preventDefault(); try { talk.setPointerCapture(e.pointerId); } catch {} press(); });
  for (const end of ['pointerup', 'pointercancel', 'lostpointercapture']) talk.addEventListener(end, release);
  talk.addEventListener('keydown', (e) => { if ((e.key === ' ' || e.key === 'Enter') && !e.repeat) { e.preventDefault(); press(); } });
  talk.addEventListener('keyup', (e) => { if (e.key === ' ' || e.key === 'Enter') { e.preventDefault(); release(); } });

  return {
    chunk,
    stopped,
    /** Whether the conversation's replies are spoken chunk by chunk here (its whole audio then does not play on its own). */
    speaks: (conversationId) => spokenTo.has(conversationId),
    enable(on) { talk.disabled = !on || !(navigator.mediaDevices && window.MediaRecorder); },
  };
}
`;
