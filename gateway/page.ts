import { CHAT_SCRIPT } from './page/chat.ts';
import { VOICE_SCRIPT } from './page/voice.ts';

/**
 * The chat page served at `/` to browsers: one self-contained document (inline CSS and
 * JS, nothing fetched from elsewhere) that speaks the WebSocket protocol of DESIGN §4.
 *
 * Pick a twin (GET /api/twins), chat, hear the audio, see the conversation and trace
 * ids. Replies stream in as the model writes them (`stream: true`), and Stop cancels one
 * (with `heardChars`: what was shown). The conversations are kept in sessionStorage, so a
 * reload resumes them, a reply in flight included. The socket reconnects with backoff and sends `resume` for every conversation it
 * knows, so nothing said while it was away is lost. `?token=…` on the page's URL is
 * passed on: on the WebSocket URL and audio URLs (browsers cannot set headers there) and
 * as `Authorization: Bearer` for fetch.
 *
 * Hold to talk: the microphone's audio goes out as an utterance (audio.start, binary frames,
 * audio.end), the transcript is shown, and the reply is spoken sentence by sentence as its
 * audio.chunk frames come; pressing Talk while the twin speaks stops it (`heardChars`: how
 * much was played). The scripts are gateway/page/chat.ts and gateway/page/voice.ts.
 *
 * Everything the server sends is shown with `textContent`, never parsed as HTML.
 * (The scripts avoid backticks and dollar-brace so they can live in this template.)
 */
export const PAGE_HTML = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>gemello</title>
<style>
  :root { color-scheme: light dark; --bg: #f6f7f9; --panel: #fff; --text: #1d2330; --muted: #667085; --line: #dde1e7;
          --me: #2f6fed; --me-text: #fff; --err: #b42318; --err-bg: #fef3f2; }
  @media (prefers-color-scheme: dark) {
    :root { --bg: #14171c; --panel: #1d2128; --text: #e6e8ec; --muted: #98a2b3; --line: #2e343e; --err: #fda29b; --err-bg: #3a1d1b; }
  }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.45 system-ui, sans-serif; background: var(--bg); color: var(--text); }
  main { max-width: 760px; height: 100vh; margin: 0 auto; padding: 12px 16px; display: flex; flex-direction: column; gap: 10px; }
  header { display: flex; align-items: baseline; justify-content: space-between; gap: 12px; }
  h1 { margin: 0; font-size: 20px; }
  #status { margin: 0; font-size: 13px; color: var(--muted); }
  #status[data-state="open"]::before { content: "\25CF  "; color: #12b76a; }
  #status[data-state="closed"]::before { content: "\25CF  "; color: #f04438; }
  .bar, .ids { display: flex; flex-wrap: wrap; align-items: center; gap: 6px 14px; font-size: 13px; }
  .ids label { color: var(--muted); }
  output { font-family: ui-monospace, monospace; font-size: 12px; }
  select, textarea, button { font: inherit; color: inherit; background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 6px 10px; }
  #chat { flex: 1; min-height: 0; background: var(--panel); border: 1px solid var(--line); border-radius: 12px; overflow: hidden; }
  ol[role="log"] { list-style: none; margin: 0; padding: 12px; height: 100%; overflow-y: auto; display: flex; flex-direction: column; gap: 8px; }
  ol[role="log"]:empty::before { content: "No messages yet. Say hello."; color: var(--muted); margin: auto; }
  .msg { max-width: 85%; padding: 8px 12px; border-radius: 12px; white-space: pre-wrap; overflow-wrap: anywhere; }
  .msg .who { display: block; font-size: 12px; font-weight: 600; opacity: .75; }
  .user { align-self: flex-end; background: var(--me); color: var(--me-text); }
  .twin { align-self: flex-start; background: var(--bg); border: 1px solid var(--line); }
  .twin audio { display: block; margin-top: 6px; max-width: 100%; }
  .pending { align-self: flex-start; color: var(--muted); font-style: italic; }
  .error { align-self: stretch; max-width: none; background: var(--err-bg); color: var(--err); border: 1px solid currentColor; }
  .note { align-self: center; font-size: 12px; color: var(--muted); }
  .note button.confirm { margin-left: 8px; padding: 2px 10px; font-size: 12px; }
  form { display: flex; gap: 8px; align-items: flex-end; }
  form label { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
  textarea { flex: 1; resize: vertical; min-height: 42px; }
  button { background: var(--me); color: #fff; border-color: var(--me); font-weight: 600; padding: 9px 18px; cursor: pointer; }
  button:disabled { opacity: .5; cursor: not-allowed; }
  button#stop { background: var(--panel); color: var(--text); border-color: var(--line); }
  button#talk { background: #12b76a; border-color: #12b76a; touch-action: none; user-select: none; }
  button#talk[aria-pressed="true"] { background: #f04438; border-color: #f04438; }
  #voice { margin: 0; min-height: 1.2em; font-size: 13px; color: var(--muted); }
  .twin.streaming .who::after { content: " \2026"; }
  :focus-visible { outline: 2px solid var(--me); outline-offset: 2px; }
</style>
</head>
<body>
<main>
  <header>
    <h1>gemello</h1>
    <p id="status" role="status" aria-label="Connection" data-state="connecting">connecting…</p>
  </header>
  <div class="bar">
    <label for="twin">Digital twin</label>
    <select id="twin" disabled><option>loading…</option></select>
  </div>
  <div class="ids">
    <label for="conversation">Conversation id</label> <output id="conversation">—</output>
    <label for="trace">Trace id</label> <output id="trace">—</output>
  </div>
  <section id="chat" aria-label="Messages"></section>
  <form id="composer">
    <label for="prompt">Message</label>
    <textarea id="prompt" rows="2" placeholder="Ask something… (Enter sends, Shift+Enter for a new line)"></textarea>
    <button type="submit" id="send" disabled>Send</button>
    <button type="button" id="stop" disabled>Stop</button>
    <button type="button" id="talk" aria-pressed="false" disabled title="Hold to talk; press while the twin speaks to talk over it">Hold to talk</button>
  </form>
  <p id="voice" role="status" aria-label="Voice" data-played="0"></p>
</main>
<script>
${VOICE_SCRIPT}
${CHAT_SCRIPT}</script>
</body>
</html>
`;
