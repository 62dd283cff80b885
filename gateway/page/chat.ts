/**
 * The chat page's script (see gateway/page.ts): twins, the socket, frames → messages, prompts,
 * Stop, resume after a reconnect or reload. The voice part (microphone, spoken chunks) is
 * gateway/page/voice.ts's `createVoice`, called with what it needs from here.
 * (No backticks and no dollar-brace: it lives in a template.)
 */
export const CHAT_SCRIPT = String.raw`(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const ui = { status: $('status'), twin: $('twin'), conversation: $('conversation'), trace: $('trace'),
               chat: $('chat'), form: $('composer'), prompt: $('prompt'), send: $('send'), stop: $('stop') };
  const isOpen = () => !!(socket && socket.readyState === WebSocket.OPEN);
  const STORE = 'gemello.conversations'; // twin id → conversation id, so a reload resumes
  const stored = () => { try { return JSON.parse(sessionStorage.getItem(STORE) || '{}') || {}; } catch { return {}; } };
  const remember = (view) => { const all = stored(); all[view.id] = view.conversationId; try { sessionStorage.setItem(STORE, JSON.stringify(all)); } catch {} };

  const token = new URLSearchParams(location.search).get('token');
  const withToken = (url) => token ? url + (url.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token) : url;
  const wsUrl = withToken((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws');

  // One view per twin: its message list, its conversation (the server assigns the id
  // with the first reply), the last seq seen (for resume) and the last trace id.
  const views = new Map();          // twin id → view
  const byConversation = new Map(); // conversation id → view
  const seenPrompts = new Set();    // requestIds of prompts shown here already
  let socket = null;
  let retries = 0;
  let requests = 0;

  function setStatus(state, text) {
    ui.status.dataset.state = state;
    ui.status.textContent = text;
  }

  function current() { return views.get(ui.twin.value) || null; }

  function showIds() {
    const v = current();
    ui.conversation.textContent = (v && v.conversationId) || '—';
    ui.trace.textContent = (v && v.traceId) || '—';
  }

  function updateSend() {
    const open = !!(socket && socket.readyState === WebSocket.OPEN && current());
    ui.send.disabled = !open;
    voice.enable(open);
    const v = current();
    ui.stop.disabled = !(open && v && v.conversationId && (v.streaming || v.pending.size));
  }

  function add(view, kind, who, text) {
    const li = document.createElement('li');
    li.className = 'msg ' + kind;
    if (who) {
      const w = document.createElement('span');
      w.className = 'who';
      w.textContent = who;
      li.append(w);
    }
    const body = document.createElement('div');
    body.textContent = text;
    li.append(body);
    view.list.append(li);
    view.list.scrollTop = view.list.scrollHeight;
    return li;
  }

  // ---- twins ----
  function viewFor(twin) {
    const list = document.createElement('ol');
    list.setAttribute('role', 'log');
    list.setAttribute('aria-label', 'Chat with ' + twin.name);
    list.hidden = true;
    ui.chat.append(list);
    const view = { id: twin.id, name: twin.name, list, conversationId: null, lastSeq: 0, traceId: null, pending: new Map(), streaming: null };
    const known = stored()[twin.id];
    if (known) { view.conversationId = known; byConversation.set(known, view); }
    return view;
  }

  function selectTwin() {
    for (const v of views.values()) v.list.hidden = v.id !== ui.twin.value;
    showIds();
    updateSend();
  }

  async function loadTwins() {
    try {
      const res = await fetch('/api/twins', { headers: token ? { Authorization: 'Bearer ' + token } : {} });
      const body = await res.json().catch(() => null);
      if (!res.ok || !Array.isArray(body)) throw new Error((body && body.error) || 'HTTP ' + res.status);
      ui.twin.replaceChildren();
      for (const t of body) {
        views.set(t.id, viewFor(t));
        ui.twin.append(new Option(t.name, t.id));
      }
      if (!body.length) ui.twin.append(new Option('no twins configured', ''));
      ui.twin.disabled = body.length === 0;
    } catch (err) {
      ui.twin.replaceChildren(new Option('could not load the twins', ''));
      setStatus('closed', 'could not load the twins: ' + err.message);
    }
    selectTwin();
  }

  // ---- frames from the server ----
  function viewOf(frame) {
    return byConversation.get(frame.conversationId) || views.get(frame.digitalTwinId) || current();
  }

  function adopt(view, frame) {
    if (frame.conversationId && !view.conversationId) {
      view.conversationId = frame.conversationId;
      byConversation.set(frame.conversationId, view);
      remember(view);
    }
    if (typeof frame.seq === 'number') view.lastSeq = Math.max(view.lastSeq, frame.seq);
  }

  /** Removes the "thinking" line of a prompt (by requestId, else the oldest one). */
  function settle(view, requestId) {
    const key = view.pending.has(requestId) ? requestId : view.pending.keys().next().value;
    if (key === undefined) return;
    view.pending.get(key).remove();
    view.pending.delete(key);
  }

  function reply(view, text, seq, requestId) {
    settle(view, requestId);
    const s = view.streaming;
    view.streaming = null;
    const li = s ? s.li : add(view, 'twin', view.name, text);
    if (s) { s.li.classList.remove('streaming'); s.body.textContent = text; }
    li.dataset.seq = String(seq);
  }

  /** A piece of the reply in flight, placed at its offset (a repeat overwrites the same text, a hole waits). */
  function delta(view, f) {
    let s = view.streaming;
    if (!s || s.promptSeq !== f.promptSeq) {
      settle(view, null);
      const li = add(view, 'twin streaming', view.name, '');
      s = view.streaming = { promptSeq: f.promptSeq, li, body: li.lastChild, text: '' };
    }
    if (f.offset > s.text.length) return;
    s.text = s.text.slice(0, f.offset) + f.text;
    s.body.textContent = s.text;
    view.list.scrollTop = view.list.scrollHeight;
  }

  function stopped(view, f) {
    settle(view, null);
    const s = view.streaming;
    view.streaming = null;
    if (s) { s.li.classList.remove('streaming'); s.body.textContent = f.text; }
    else if (f.text && !f.replySeq) add(view, 'twin', view.name, f.heardChars === null ? f.text : f.text.slice(0, f.heardChars));
    add(view, 'note', '', f.heardChars === null ? 'stopped' : 'stopped after ' + f.heardChars + ' characters');
  }

  function audio(view, url, replySeq) {
    const player = document.createElement('audio');
    player.controls = true;
    player.preload = 'auto';
    player.src = withToken(url);
    player.setAttribute('aria-label', 'Spoken reply from ' + view.name);
    const li = view.list.querySelector('li[data-seq="' + replySeq + '"]') || add(view, 'twin', view.name, '');
    li.append(player);
    // Spoken chunk by chunk already: the one file is there to play again, not played twice.
    if (!view.list.hidden && !voice.speaks(view.conversationId)) player.play().catch(() => {}); // the browser may block autoplay; the controls remain
  }

  function describe(data) {
    return Object.entries(data || {}).map(([k, v]) => k + ': ' + (typeof v === 'string' ? v : JSON.stringify(v))).join(', ');
  }

  /** The values the model proposes (all that are open), with a button that confirms them; an older proposal's button goes. */
  function proposed(view, data, seq) {
    for (const b of view.list.querySelectorAll('button.confirm')) b.disabled = true;
    if (!data || !Object.keys(data).length) { add(view, 'note', '', 'proposal withdrawn'); return; }
    const li = add(view, 'note proposal', '', 'proposed: ' + describe(data));
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = 'Confirm';
    button.className = 'confirm';
    button.addEventListener('click', () => {
      if (!socket || socket.readyState !== WebSocket.OPEN || !view.conversationId) return;
      socket.send(JSON.stringify({ type: 'confirm', conversationId: view.conversationId, proposalSeq: seq }));
      button.disabled = true;
    });
    li.append(button);
  }

  function confirmed(view, data) {
    for (const b of view.list.querySelectorAll('button.confirm')) b.disabled = true;
    add(view, 'note', '', 'confirmed: ' + describe(data));
  }

  function failure(view, frame) {
    settle(view, frame.requestId);
    const li = add(view, 'error', 'Error: ' + (frame.code || 'unknown'), String(frame.error || 'something went wrong'));
    li.setAttribute('role', 'alert');
  }

  /** An event replayed by resume: shown as the live frame would have been. */
  function replayed(view, f) {
    const d = f.data || {};
    switch (f.event) {
      case 'PromptReceived':
        if (!d.requestId || !seenPrompts.has(d.requestId)) add(view, 'user', 'You', d.text);
        break;
      case 'ReplyGenerated': reply(view, d.text, f.seq, null); break;
      case 'ReplyStopped': stopped(view, { text: d.text, heardChars: d.heardChars, replySeq: d.replySeq }); break;
      case 'ReplyFailed': failure(view, { code: 'model_failed', error: d.reason }); break;
      case 'AudioReady': audio(view, '/api/audio/' + encodeURIComponent(d.audioId), d.replySeq); break;
      case 'AudioFailed': add(view, 'note', '', 'no audio: ' + d.reason); break;
      case 'DataProposed': proposed(view, d.data, f.seq); break;
      case 'DataConfirmed': confirmed(view, d.data); break;
    }
  }

  function handle(f) {
    const view = viewOf(f);
    if (!view) return;
    adopt(view, f);
    switch (f.type) {
      case 'reply':
        if ('traceId' in f) view.traceId = f.traceId || null;
        reply(view, f.reply, f.seq, f.requestId);
        break;
      case 'reply.delta': delta(view, f); break;
      case 'reply.restart': if (view.streaming) { view.streaming.text = ''; view.streaming.body.textContent = ''; } break;
      case 'reply.stopped': stopped(view, f); voice.stopped(f); break;
      case 'transcript': transcript(view, f); break;
      case 'audio.chunk': voice.chunk(view, f); break;
      case 'audio': audio(view, f.audioUrl, f.replySeq); break;
      case 'audio.failed': add(view, 'note', '', 'no audio: ' + f.reason); break;
      case 'data.proposed': proposed(view, f.data, f.seq); break;
      case 'data.confirmed': confirmed(view, f.data); break;
      case 'event': replayed(view, f); break;
      case 'resumed': view.lastSeq = Math.max(view.lastSeq, f.lastSeq || 0); break;
      case 'error': failure(view, f); break;
    }
    if (view === current()) { showIds(); updateSend(); }
  }

  // ---- the socket ----
  function connect() {
    setStatus('connecting', 'connecting…');
    const ws = new WebSocket(wsUrl);
    socket = ws;
    ws.onopen = () => {
      const again = retries > 0;
      retries = 0;
      setStatus('open', 'connected');
      updateSend();
      // After a reconnect, ask for whatever happened while we were away.
      for (const v of views.values()) {
        if (v.conversationId) ws.send(JSON.stringify({ type: 'resume', conversationId: v.conversationId, afterSeq: v.lastSeq }));
      }
      if (again) for (const v of views.values()) if (v.conversationId) add(v, 'note', '', 'reconnected');
    };
    ws.onmessage = (e) => {
      let frame;
      try { frame = JSON.parse(e.data); } catch { return; }
      if (frame && typeof frame === 'object') handle(frame);
    };
    ws.onclose = (e) => {
      if (socket !== ws) return;
      const delay = Math.min(10000, 500 * 2 ** retries++);
      setStatus('closed', 'disconnected' + (e.reason ? ' (' + e.reason + ')' : '') + '; reconnecting in ' + Math.ceil(delay / 1000) + ' s');
      updateSend();
      setTimeout(connect, delay);
    };
  }

  function send() {
    const view = current();
    const text = ui.prompt.value.trim();
    if (!view || !text || !socket || socket.readyState !== WebSocket.OPEN) return;
    const requestId = newRequestId();
    const frame = { type: 'prompt', digitalTwinId: view.id, prompt: text, requestId, stream: true };
    if (view.conversationId) frame.conversationId = view.conversationId;
    socket.send(JSON.stringify(frame));
    seenPrompts.add(requestId);
    add(view, 'user', 'You', text);
    view.pending.set(requestId, add(view, 'pending', '', view.name + ' is thinking…'));
    ui.prompt.value = '';
    ui.prompt.focus();
    updateSend();
  }

  /** Stop: the reply in flight is cancelled; the history keeps what was shown of it. */
  function stop() {
    const view = current();
    if (view) stopWith(view, view.streaming ? view.streaming.text.length : null);
  }

  /** Stops the view's reply; heard: how many of its characters the user heard or read (null: all). */
  function stopWith(view, heard) {
    if (!view.conversationId || !isOpen()) return;
    const frame = { type: 'stop', conversationId: view.conversationId };
    if (typeof heard === 'number') frame.heardChars = heard;
    socket.send(JSON.stringify(frame));
    ui.stop.disabled = true;
  }

  /** What the user said, as the server heard it: shown as their message, and the twin thinks. */
  function transcript(view, f) {
    const key = view.pending.has(f.requestId) ? f.requestId : view.pending.keys().next().value;
    if (f.requestId) seenPrompts.add(f.requestId);
    add(view, 'user', 'You (voice)', f.text);
    const p = key === undefined ? null : view.pending.get(key);
    if (p) { p.lastChild.textContent = view.name + ' is thinking…'; view.list.append(p); }
  }

  const newRequestId = () => 'page-' + Date.now().toString(36) + '-' + (++requests);
  const voice = createVoice({
    current,
    open: isOpen,
    withToken,
    newRequestId,
    send: (frame) => { if (isOpen()) socket.send(JSON.stringify(frame)); },
    sendBinary: (bytes) => { if (isOpen()) socket.send(bytes); },
    stop: stopWith,
    listening: (view, requestId) => {
      seenPrompts.add(requestId);
      view.pending.set(requestId, add(view, 'pending', '', 'listening…'));
      updateSend();
    },
  });

  ui.twin.addEventListener('change', selectTwin);
  ui.form.addEventListener('submit', (e) => { e.preventDefault(); send(); });
  ui.stop.addEventListener('click', stop);
  ui.prompt.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
  });

  // The twins first: a reload's conversations are known (sessionStorage) before the socket resumes them.
  loadTwins().finally(connect);
})();
`;
