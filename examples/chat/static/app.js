// Browser client for the chat example. Loaded as an ES module, so nothing
// here leaks into the global scope.
//
// Security rule for this file: text that came from the network is only ever
// put into the page through textContent, text nodes, .value or dataset.

const NICK_KEY = 'chat.nick';
const SUBPROTOCOL = 'chat.v1';
const BACKOFF_START_MS = 1000;
const BACKOFF_MAX_MS = 30000;
const MAX_MESSAGES = 500;
const MAX_STROKES = 50000;
// Stroke widths are pixels on this logical board; the canvas is scaled to it
// so every client sees the same picture whatever its screen size.
const BOARD_W = 800;
const BOARD_H = 600;
const MIN_SEGMENT = 1; // logical pixels; skips pointer jitter
const COLOR_RE = /^#[0-9a-fA-F]{6}$/;
const NICK_ERRORS = new Set(['nick_taken', 'invalid_nick']);
// Coming back as the same user after a drop, the nick may still be held for a few seconds
// (a cluster frees a lost node's nicks within its heartbeat TTL and one interval) and a node
// may not reach Redis yet: such refusals are retried, with back-off, for this long.
const REJOIN_RETRY_CODES = new Set(['nick_taken', 'unavailable']);
const REJOIN_WINDOW_MS = 20000;
const REJOIN_RETRY_MAX_MS = 4000;

const $ = (id) => document.getElementById(id);
const el = {
  join: $('join'),
  nickForm: $('nick-form'),
  nickInput: $('nick-input'),
  nickSubmit: $('nick-submit'),
  nickError: $('nick-error'),
  me: $('me'),
  status: $('status'),
  messages: $('messages'),
  composer: $('composer'),
  input: $('input'),
  send: $('send'),
  whisperTarget: $('whisper-target'),
  whisperNick: $('whisper-nick'),
  whisperClear: $('whisper-clear'),
  users: $('users'),
  userCount: $('user-count'),
  refreshUsers: $('refresh-users'),
  board: $('board'),
  color: $('color'),
  width: $('width'),
  widthValue: $('width-value'),
  clear: $('clear'),
};
const ctx = el.board.getContext('2d');

const state = {
  ws: null,
  joined: false,
  me: null,
  wantedNick: null, // nick to (re)join with as soon as the socket is open
  lastId: null, // id of the last chat message shown: a rejoin resumes after it (cluster mode)
  users: new Map(), // lower-cased nick -> nick as the server spelled it
  whisperTo: null,
  strokes: [],
  attempts: 0,
  reconnectTimer: 0,
  countdownTimer: 0,
  reconnectAt: 0,
  rejoinUntil: 0, // while coming back as the same user: until when refusals are retried
  rejoinTries: 0,
  rejoinTimer: 0,
  pointer: null, // the one pointer currently drawing: {id, x, y, moved}
};

// ---------------------------------------------------------------- helpers

const str = (v) => (typeof v === 'string' ? v : '');
const lower = (s) => s.toLowerCase();
const sameNick = (a, b) => typeof a === 'string' && typeof b === 'string' && lower(a) === lower(b);
const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
const round4 = (v) => Math.round(v * 10000) / 10000;
const isNum = (v) => typeof v === 'number' && Number.isFinite(v);

function loadNick() {
  try {
    return localStorage.getItem(NICK_KEY) || '';
  } catch {
    return '';
  }
}

function saveNick(nick) {
  try {
    localStorage.setItem(NICK_KEY, nick);
  } catch {
    // Storage can be disabled (private mode); remembering is best effort.
  }
}

function setStatus(text) {
  if (el.status.textContent !== text) el.status.textContent = text;
}

function setState(name) {
  document.body.dataset.state = name;
}

function hue(nick) {
  let h = 0;
  for (const ch of lower(nick)) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

function span(className, text) {
  const s = document.createElement('span');
  s.className = className;
  s.textContent = text;
  return s;
}

function nickSpan(className, nick) {
  const s = span(className, nick);
  s.style.setProperty('--hue', String(hue(nick)));
  return s;
}

function timeEl(ts) {
  let d = new Date(isNum(ts) ? ts : Date.now());
  if (Number.isNaN(d.getTime())) d = new Date();
  const t = document.createElement('time');
  t.className = 'time';
  t.dateTime = d.toISOString();
  t.title = d.toLocaleString();
  t.textContent = `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
  return t;
}

// ------------------------------------------------------------- connection

function wsUrl() {
  return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
}

function isOpen() {
  return state.ws !== null && state.ws.readyState === WebSocket.OPEN;
}

function send(obj) {
  if (!isOpen()) return false;
  state.ws.send(JSON.stringify(obj));
  return true;
}

function connect() {
  stopReconnectTimers();
  setState('connecting');
  setStatus('connecting…');
  let socket;
  try {
    socket = new WebSocket(wsUrl(), [SUBPROTOCOL]);
  } catch (err) {
    console.error('WebSocket failed:', err);
    onClosed();
    return;
  }
  state.ws = socket;
  // A replaced socket may still fire events; only the current one counts.
  socket.addEventListener('open', () => {
    if (state.ws === socket) onOpen();
  });
  socket.addEventListener('message', (ev) => {
    if (state.ws === socket) onMessage(ev.data);
  });
  socket.addEventListener('close', () => {
    if (state.ws !== socket) return;
    state.ws = null;
    onClosed();
  });
}

function onOpen() {
  setStatus('connected');
  // What the browser and the server agreed (permessage-deflate, normally), for the curious and the tests.
  document.body.dataset.extensions = state.ws ? state.ws.extensions : '';
  if (state.wantedNick) sendJoin(state.wantedNick);
}

function sendJoin(nick) {
  setNickError('');
  const join = { type: 'join', nick };
  const rejoining = state.me !== null && sameNick(state.me, nick);
  // Coming back as the same user: a cluster node first sends what we missed since lastId.
  if (rejoining && state.lastId !== null) join.resume = state.lastId;
  if (rejoining && !state.rejoinUntil) state.rejoinUntil = Date.now() + REJOIN_WINDOW_MS;
  send(join);
}

function onClosed() {
  const wasJoined = state.joined;
  state.joined = false;
  stopDrawing();
  setJoinedUi(false);
  setState('closed');
  if (wasJoined) addSystem('Connection lost.');
  scheduleReconnect();
}

function scheduleReconnect() {
  stopReconnectTimers();
  const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_START_MS * 2 ** Math.min(state.attempts, 16));
  state.attempts += 1;
  state.reconnectAt = Date.now() + delay;
  setState('reconnecting');
  updateCountdown();
  state.reconnectTimer = setTimeout(connect, delay);
  state.countdownTimer = setInterval(updateCountdown, 250);
}

function updateCountdown() {
  const secs = Math.max(1, Math.ceil((state.reconnectAt - Date.now()) / 1000));
  setStatus(`reconnecting in ${secs}s…`);
}

function stopReconnectTimers() {
  clearTimeout(state.reconnectTimer);
  clearInterval(state.countdownTimer);
  state.reconnectTimer = 0;
  state.countdownTimer = 0;
}

// ------------------------------------------------------- server messages

const handlers = new Map([
  ['welcome', onWelcome],
  ['joined', onJoined],
  ['left', onLeft],
  ['message', (m) => {
    if (Number.isSafeInteger(m.id)) state.lastId = m.id;
    addChat(m, false);
  }],
  ['whisper', (m) => addChat(m, true)],
  ['users', (m) => setUsers(m.users)],
  ['draw', onDraw],
  ['clear', onClear],
  ['error', onError],
]);

function onMessage(data) {
  if (typeof data !== 'string') return;
  let msg;
  try {
    msg = JSON.parse(data);
  } catch {
    return;
  }
  if (!msg || typeof msg !== 'object' || typeof msg.type !== 'string') return;
  const handler = handlers.get(msg.type);
  if (handler) handler(msg);
}

function onWelcome(msg) {
  const nick = str(msg.nick) || state.wantedNick || '';
  const rejoined = state.me !== null && sameNick(state.me, nick);
  const focusChat = el.nickForm.contains(document.activeElement);
  state.joined = true;
  state.me = nick;
  state.wantedNick = nick;
  state.attempts = 0;
  state.rejoinUntil = 0;
  state.rejoinTries = 0;
  saveNick(nick);
  el.me.textContent = nick;
  el.nickInput.value = nick;
  hideJoinForm();
  setUsers(msg.users);
  setStrokes(Array.isArray(msg.board) ? msg.board : []);
  setJoinedUi(true);
  setState('joined');
  setStatus('connected');
  addSystem(rejoined ? `Reconnected as ${nick}.` : `Welcome, ${nick}!`);
  if (focusChat) el.input.focus();
}

function onJoined(msg) {
  const nick = str(msg.nick);
  if (!nick) return;
  state.users.set(lower(nick), nick);
  renderUsers();
  if (!sameNick(nick, state.me)) addSystem(`${nick} joined`);
}

function onLeft(msg) {
  const nick = str(msg.nick);
  if (!nick) return;
  state.users.delete(lower(nick));
  renderUsers();
  const reason = str(msg.reason);
  addSystem(reason ? `${nick} left (${reason})` : `${nick} left`);
}

function onDraw(msg) {
  const stroke = toStroke(msg);
  if (stroke) addStroke(stroke);
}

function onClear(msg) {
  setStrokes([]);
  const from = str(msg.from);
  if (sameNick(from, state.me)) addSystem('You cleared the board');
  else addSystem(from ? `${from} cleared the board` : 'The board was cleared');
}

function onError(msg) {
  const code = str(msg.code);
  const text = str(msg.message) || code || 'Unknown error';
  if (!state.joined && retryRejoin(code)) return;
  if (!state.joined) {
    state.rejoinUntil = 0;
    state.rejoinTries = 0;
    // A rejected nick must not be retried automatically on reconnect.
    if (NICK_ERRORS.has(code)) state.wantedNick = null;
    showJoinForm(text);
    if (NICK_ERRORS.has(code)) return;
  }
  const line = addSystem(`Error: ${text}`, 'error');
  if (code) line.dataset.code = code;
}

// Coming back as the same user, a refusal that time will lift is retried; true if it is.
function retryRejoin(code) {
  if (!REJOIN_RETRY_CODES.has(code) || !state.rejoinUntil || Date.now() >= state.rejoinUntil) return false;
  const delay = Math.min(REJOIN_RETRY_MAX_MS, 250 * 2 ** Math.min(state.rejoinTries, 8));
  state.rejoinTries += 1;
  setStatus('rejoining…');
  clearTimeout(state.rejoinTimer);
  const socket = state.ws;
  state.rejoinTimer = setTimeout(() => {
    if (state.ws === socket && !state.joined && state.wantedNick) sendJoin(state.wantedNick);
  }, delay);
  return true;
}

// ---------------------------------------------------------------- join UI

function setNickError(text) {
  el.nickError.textContent = text;
}

function showJoinForm(error) {
  el.join.hidden = false;
  el.nickSubmit.disabled = false;
  el.nickSubmit.textContent = 'Join';
  if (error !== undefined) setNickError(error);
  if (error) {
    el.nickInput.focus();
    el.nickInput.select();
  }
}

function hideJoinForm() {
  el.join.hidden = true;
  setNickError('');
  el.nickSubmit.disabled = false;
  el.nickSubmit.textContent = 'Join';
}

el.nickForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const nick = el.nickInput.value.trim();
  if (!nick) {
    setNickError('Please enter a nickname.');
    el.nickInput.focus();
    return;
  }
  el.nickInput.value = nick;
  state.wantedNick = nick;
  el.nickSubmit.disabled = true;
  el.nickSubmit.textContent = 'Joining…';
  // If the socket is not open yet, onOpen sends the join.
  if (isOpen()) sendJoin(nick);
});

function setJoinedUi(joined) {
  el.input.disabled = !joined;
  el.send.disabled = !joined;
  el.clear.disabled = !joined;
  el.refreshUsers.disabled = !joined;
  if (!joined) el.nickSubmit.disabled = false;
  if (!joined && !el.join.hidden) el.nickSubmit.textContent = 'Join';
}

// ---------------------------------------------------------------- messages

function appendLine(node) {
  const box = el.messages;
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 48;
  box.append(node);
  while (box.childElementCount > MAX_MESSAGES) box.firstElementChild.remove();
  if (atBottom || node.classList.contains('mine')) box.scrollTop = box.scrollHeight;
}

function addChat(msg, whisper) {
  const from = str(msg.from);
  const line = document.createElement('div');
  line.className = 'msg';
  if (whisper) line.classList.add('whisper');
  if (sameNick(from, state.me)) line.classList.add('mine');
  if (msg.id !== undefined && msg.id !== null) line.dataset.id = String(msg.id);

  const meta = document.createElement('div');
  meta.className = 'meta';
  meta.append(nickSpan('from', from));
  if (whisper) {
    meta.append(span('arrow', ' → '), nickSpan('to', str(msg.to)), ' ', span('private', '(private)'));
  }
  meta.append(' ', timeEl(msg.ts));

  const text = document.createElement('div');
  text.className = 'text';
  text.textContent = str(msg.text);

  line.append(meta, text);
  appendLine(line);
}

function addSystem(text, extraClass) {
  const line = document.createElement('div');
  line.className = 'msg system';
  if (extraClass) line.classList.add(extraClass);
  line.append(timeEl(Date.now()), ' ', span('text', text));
  appendLine(line);
  return line;
}

el.composer.addEventListener('submit', (e) => {
  e.preventDefault();
  const text = el.input.value.trim();
  if (!text || !state.joined) return;
  const sent = state.whisperTo
    ? send({ type: 'whisper', to: state.whisperTo, text })
    : send({ type: 'say', text });
  if (sent) el.input.value = '';
  el.input.focus();
});

el.input.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && state.whisperTo) {
    e.preventDefault();
    setWhisperTarget(null);
  }
});

// ------------------------------------------------------------------ users

function setUsers(list) {
  state.users.clear();
  if (Array.isArray(list)) {
    for (const n of list) if (typeof n === 'string' && n) state.users.set(lower(n), n);
  }
  if (state.joined && state.me) state.users.set(lower(state.me), state.me);
  renderUsers();
}

function renderUsers() {
  const nicks = [...state.users.values()].sort((a, b) =>
    a.localeCompare(b, undefined, { sensitivity: 'base' }),
  );
  const items = nicks.map((nick) => {
    const li = document.createElement('li');
    li.dataset.nick = nick;
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.className = 'user';
    btn.textContent = nick;
    btn.style.setProperty('--hue', String(hue(nick)));
    if (sameNick(nick, state.me)) {
      li.classList.add('self');
      btn.title = 'That’s you';
    } else {
      btn.title = `Whisper to ${nick}`;
    }
    const selected = sameNick(nick, state.whisperTo);
    li.classList.toggle('selected', selected);
    btn.setAttribute('aria-pressed', String(selected));
    li.append(btn);
    return li;
  });
  el.users.replaceChildren(...items);
  el.userCount.textContent = `(${nicks.length})`;
}

function setWhisperTarget(nick) {
  state.whisperTo = nick || null;
  el.whisperNick.textContent = nick || '';
  el.whisperTarget.hidden = !nick;
  el.input.placeholder = nick ? `Whisper to ${nick}…` : 'Message everyone…';
  renderUsers();
}

el.users.addEventListener('click', (e) => {
  const li = e.target instanceof Element ? e.target.closest('li') : null;
  if (!li || !el.users.contains(li)) return;
  const nick = li.dataset.nick;
  if (!nick || sameNick(nick, state.me)) return;
  setWhisperTarget(nick);
  if (!el.input.disabled) el.input.focus();
});

el.whisperClear.addEventListener('click', () => {
  setWhisperTarget(null);
  if (!el.input.disabled) el.input.focus();
});

el.refreshUsers.addEventListener('click', () => send({ type: 'users' }));

// ------------------------------------------------------------------ board

function toStroke(m) {
  if (!m || typeof m !== 'object') return null;
  const { x0, y0, x1, y1, width, color } = m;
  for (const v of [x0, y0, x1, y1]) if (!isNum(v) || v < 0 || v > 1) return null;
  if (!isNum(width) || typeof color !== 'string' || !COLOR_RE.test(color)) return null;
  return { x0, y0, x1, y1, color, width: clamp(width, 1, 50), from: str(m.from) };
}

function updateStrokeCount() {
  document.body.dataset.strokes = String(state.strokes.length);
}

function paintStroke(s) {
  const w = el.board.width;
  const h = el.board.height;
  const lineWidth = s.width * (w / BOARD_W);
  const ax = s.x0 * w;
  const ay = s.y0 * h;
  const bx = s.x1 * w;
  const by = s.y1 * h;
  ctx.beginPath();
  if (ax === bx && ay === by) {
    // Zero-length lines are not reliably capped, so draw dots explicitly.
    ctx.fillStyle = s.color;
    ctx.arc(ax, ay, lineWidth / 2, 0, Math.PI * 2);
    ctx.fill();
  } else {
    ctx.strokeStyle = s.color;
    ctx.lineWidth = lineWidth;
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
    ctx.moveTo(ax, ay);
    ctx.lineTo(bx, by);
    ctx.stroke();
  }
}

function redraw() {
  ctx.clearRect(0, 0, el.board.width, el.board.height);
  for (const s of state.strokes) paintStroke(s);
  updateStrokeCount();
}

function setStrokes(list) {
  state.strokes = list.map(toStroke).filter(Boolean).slice(-MAX_STROKES);
  redraw();
}

function addStroke(s) {
  state.strokes.push(s);
  if (state.strokes.length > MAX_STROKES) {
    state.strokes.splice(0, state.strokes.length - MAX_STROKES);
    redraw();
  } else {
    paintStroke(s);
    updateStrokeCount();
  }
}

function resizeBoard() {
  const rect = el.board.getBoundingClientRect();
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(rect.width * dpr));
  const h = Math.max(1, Math.round(rect.height * dpr));
  if (el.board.width !== w || el.board.height !== h) {
    el.board.width = w;
    el.board.height = h;
  }
  redraw();
}

function boardPoint(e) {
  const rect = el.board.getBoundingClientRect();
  if (rect.width <= 0 || rect.height <= 0) return null;
  return {
    x: round4(clamp((e.clientX - rect.left) / rect.width, 0, 1)),
    y: round4(clamp((e.clientY - rect.top) / rect.height, 0, 1)),
  };
}

function currentColor() {
  return COLOR_RE.test(el.color.value) ? el.color.value : '#000000';
}

function currentWidth() {
  return clamp(Math.round(Number(el.width.value)) || 4, 1, 20);
}

function emitSegment(x0, y0, x1, y1) {
  const seg = { x0, y0, x1, y1, color: currentColor(), width: currentWidth() };
  addStroke({ ...seg, from: state.me || '' });
  send({ type: 'draw', ...seg });
}

function stopDrawing() {
  const p = state.pointer;
  state.pointer = null;
  if (p && el.board.hasPointerCapture(p.id)) el.board.releasePointerCapture(p.id);
}

el.board.addEventListener('pointerdown', (e) => {
  if (!state.joined || state.pointer) return;
  if (e.pointerType === 'mouse' && e.button !== 0) return;
  const p = boardPoint(e);
  if (!p) return;
  e.preventDefault();
  try {
    el.board.setPointerCapture(e.pointerId);
  } catch {
    // Capture is a nicety; drawing still works without it.
  }
  state.pointer = { id: e.pointerId, x: p.x, y: p.y, moved: false };
});

el.board.addEventListener('pointermove', (e) => {
  const cur = state.pointer;
  if (!cur || e.pointerId !== cur.id) return;
  const p = boardPoint(e);
  if (!p) return;
  if (Math.hypot((p.x - cur.x) * BOARD_W, (p.y - cur.y) * BOARD_H) < MIN_SEGMENT) return;
  emitSegment(cur.x, cur.y, p.x, p.y);
  cur.x = p.x;
  cur.y = p.y;
  cur.moved = true;
});

el.board.addEventListener('pointerup', (e) => {
  const cur = state.pointer;
  if (!cur || e.pointerId !== cur.id) return;
  if (!cur.moved) emitSegment(cur.x, cur.y, cur.x, cur.y);
  stopDrawing();
});

for (const type of ['pointercancel', 'lostpointercapture']) {
  el.board.addEventListener(type, (e) => {
    if (state.pointer && e.pointerId === state.pointer.id) state.pointer = null;
  });
}

el.clear.addEventListener('click', () => {
  if (!state.joined) return;
  // Clear at once; the server's echoed `clear` is then a harmless repeat.
  if (send({ type: 'clear' })) setStrokes([]);
});

el.width.addEventListener('input', () => {
  el.widthValue.textContent = String(currentWidth());
});

// ------------------------------------------------------------------- boot

if (typeof ResizeObserver === 'function') {
  new ResizeObserver(resizeBoard).observe(el.board);
}
// Also catches devicePixelRatio changes (zoom), which do not resize the box.
window.addEventListener('resize', resizeBoard);

// Skip the rest of a long backoff when the network comes back.
window.addEventListener('online', () => {
  if (state.reconnectTimer) connect();
});

el.nickInput.value = loadNick();
el.widthValue.textContent = String(currentWidth());
setJoinedUi(false);
resizeBoard();
connect();
