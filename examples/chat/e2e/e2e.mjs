#!/usr/bin/env node
// Browser end-to-end test of the chat example, in headless Chromium.
//
// Starts target/release/chat on a free port (CHAT_BIN overrides the path),
// drives four real pages through playwright-core with the system Chromium
// (CHROMIUM overrides /usr/bin/chromium), and writes screenshots/chat.png and
// screenshots/chat-phone.png beside it. Then two phases of their own: a cluster
// (its own redis-server, two nodes, a page on each, one node killed and started
// again: the page rejoins and resumes) and the chat over TLS (https:// and wss://,
// with a certificate made by openssl). Prints `e2e: N passed, M failed` last and
// exits 0 only when nothing failed. Never waits for an outcome with a fixed sleep:
// every wait is an auto-waiting locator or waitForFunction with a timeout, and
// the whole run is bounded by E2E_TIMEOUT_MS (default 180 s).
//
// Run from anywhere: node examples/chat/e2e/e2e.mjs (scripts/e2e.sh installs
// what it needs first).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..', '..');
const CHAT_BIN = process.env.CHAT_BIN || path.join(ROOT, 'target', 'release', 'chat');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SCREENSHOTS = path.resolve(HERE, '..', 'screenshots');
const TOTAL_TIMEOUT_MS = Number(process.env.E2E_TIMEOUT_MS) || 180_000;
const WAIT_MS = 15_000; // any single wait
const START_MS = 20_000; // server start-up and browser launch

// Everything Chromium and Playwright write (profiles, crash dumps, sockets)
// goes under one temp dir, deleted at the end. Set before Playwright is loaded.
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'chat-e2e-'));
process.env.TMPDIR = TMP;
const { chromium } = await import('playwright-core');

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// ------------------------------------------------------------- bookkeeping

let passed = 0;
const failures = [];
const children = []; // every chat node and redis-server started, killed at the end
let serverLog = [];
let browser = null;
let finished = false;

function log(line) {
  process.stdout.write(`${line}\n`);
}

function oneLine(err) {
  // Playwright colours its call logs; keep the report plain.
  const text = (err instanceof Error ? err.message : String(err)).replace(/\x1b\[[0-9;]*m/g, '');
  return text.split('\n').filter((l) => l.trim()).slice(0, 4).join(' | ');
}

/** Runs one named check; a failure is recorded and the run goes on. */
async function check(name, fn) {
  try {
    await fn();
    passed += 1;
    log(`ok   ${name}`);
    return true;
  } catch (err) {
    failures.push(`${name}: ${oneLine(err)}`);
    log(`FAIL ${name}: ${oneLine(err)}`);
    return false;
  }
}

/** Like check, but later steps cannot run without it: stops the run. */
async function must(name, fn) {
  if (!(await check(name, fn))) throw new Fatal(name);
}

class Fatal extends Error {}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

// ------------------------------------------------------------------ server

/** Starts a chat node with these flags (and `--addr`, default a free port); resolves to the
 * address it prints and its process, as { addr, child }. */
function startServer(flags = [], addr = '127.0.0.1:0') {
  return new Promise((resolve, reject) => {
    if (!fs.existsSync(CHAT_BIN)) {
      reject(new Error(`${CHAT_BIN} does not exist (cargo build --release --bin chat, or set CHAT_BIN)`));
      return;
    }
    const child = spawn(CHAT_BIN, ['--addr', addr, ...flags], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' },
    });
    children.push(child);
    let buffer = '';
    let done = false;
    const timer = setTimeout(() => {
      if (!done) {
        done = true;
        reject(new Error(`no "chat: open http://..." line on stderr within ${START_MS} ms`));
      }
    }, START_MS);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      buffer += chunk;
      const lines = buffer.split('\n');
      buffer = lines.pop();
      for (const line of lines) {
        serverLog.push(line);
        if (serverLog.length > 50) serverLog = serverLog.slice(-50);
        const m = /chat: open https?:\/\/(\S+) in a browser/.exec(line);
        if (m && !done) {
          done = true;
          clearTimeout(timer);
          resolve({ addr: m[1], child });
        }
      }
    });
    child.on('error', (err) => {
      if (!done) {
        done = true;
        clearTimeout(timer);
        reject(err);
      }
    });
    child.on('exit', (code, signal) => {
      if (!finished) serverLog.push(`[chat exited: code ${code}, signal ${signal}]`);
      if (!done) {
        done = true;
        clearTimeout(timer);
        reject(new Error(`chat exited before listening (code ${code}, signal ${signal})`));
      }
    });
  });
}

const running = (child) => child.exitCode === null && child.signalCode === null;

async function stopChild(child, signal = 'SIGTERM') {
  if (!running(child)) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

async function stopServers() {
  await Promise.all(children.map((child) => stopChild(child)));
}

/** A port nothing listens on now. */
function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** A redis-server of the test's own on a free loopback port, nothing kept on disk; resolves
 * to its URL once it answers PING. */
async function startRedis() {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', TMP], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.push(child);
  await new Promise((resolve, reject) => {
    child.once('error', (err) => reject(new Error(`redis-server: ${err.message} (apt-get install redis-server)`)));
    const deadline = Date.now() + START_MS;
    const ping = () => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => socket.write('PING\r\n'));
      socket.once('data', (data) => {
        socket.destroy();
        if (String(data).startsWith('+PONG')) resolve();
        else retry();
      });
      socket.once('error', () => retry());
    };
    const retry = () => {
      if (!running(child)) reject(new Error('redis-server exited'));
      else if (Date.now() > deadline) reject(new Error('redis-server never answered PING'));
      else setTimeout(ping, 50);
    };
    ping();
  });
  return `redis://127.0.0.1:${port}/0`;
}

/** A throw-away certificate for 127.0.0.1, made with openssl; resolves to its PEM paths. */
function makeCertificate() {
  const cert = path.join(TMP, 'cert.pem');
  const key = path.join(TMP, 'key.pem');
  const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key,
    '-out', cert, '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'];
  return new Promise((resolve, reject) => {
    const child = spawn('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => { err += d; });
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve({ cert, key }) : reject(new Error(`openssl: ${err.slice(-300)}`))));
  });
}

// ----------------------------------------------------------------- browser

async function openPage(nick, base, contextOptions = {}, scheme = 'http') {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 }, ...contextOptions });
  context.setDefaultTimeout(WAIT_MS);
  const page = await context.newPage();
  const info = { nick, page, context, dialogs: [], errors: [], cspViolations: [] };
  // Registered before the page loads, so nothing can slip past.
  page.on('dialog', (dialog) => {
    info.dialogs.push(`${dialog.type()}: ${dialog.message()}`);
    dialog.dismiss().catch(() => {});
  });
  page.on('pageerror', (err) => info.errors.push(oneLine(err)));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && /Content Security Policy/i.test(msg.text())) {
      info.cspViolations.push(msg.text().slice(0, 160));
    }
  });
  info.sockets = [];
  page.on('websocket', (ws) => info.sockets.push(ws.url()));
  const response = await page.goto(`${scheme}://${base}/`, { waitUntil: 'load' });
  assert(response && response.ok(), `GET / answered ${response && response.status()}`);
  return info;
}

async function join(info) {
  const { page, nick } = info;
  await page.locator('#nick-input').fill(nick);
  await page.locator('#nick-input').press('Enter');
  await page.waitForFunction(
    () => document.body.dataset.state === 'joined' || document.getElementById('nick-error').textContent,
    null,
    { timeout: WAIT_MS },
  );
  const me = await page.locator('#me').textContent();
  assert(me === nick, `#me shows ${JSON.stringify(me)}`);
  const error = await page.locator('#nick-error').textContent();
  assert(!error, `#nick-error says ${JSON.stringify(error)}`);
}

/** `join` on a cluster node, again while the node answers `unavailable` (it has not reached
 * Redis yet, just after it started). */
async function joinWhenAvailable(info) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    try {
      return await join(info);
    } catch (err) {
      const error = await info.page.locator('#nick-error').textContent();
      if (!/unavailable/.test(error) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

async function waitForUsers(page, nicks) {
  await page.waitForFunction(
    (want) => {
      const have = [...document.querySelectorAll('#users li[data-nick]')].map((li) => li.dataset.nick);
      return want.every((n) => have.includes(n));
    },
    nicks,
    { timeout: WAIT_MS },
  );
}

async function say(page, text) {
  await page.locator('#input').fill(text);
  await page.locator('#send').click();
  // The composer empties itself once the message is on the socket.
  await page.waitForFunction(() => document.getElementById('input').value === '', null, { timeout: WAIT_MS });
}

/** Waits until a chat line from `from` with exactly `text` (a whisper or not) is on the page. */
async function waitForChat(page, from, text, { whisper = false } = {}) {
  await page.waitForFunction(
    ([from, text, whisper]) =>
      [...document.querySelectorAll('#messages .msg:not(.system)')].some(
        (m) =>
          m.querySelector('.from')?.textContent === from &&
          m.querySelector('.text')?.textContent === text &&
          m.classList.contains('whisper') === whisper,
      ),
    [from, text, whisper],
    { timeout: WAIT_MS },
  );
}

async function strokes(page) {
  return Number(await page.evaluate(() => document.body.dataset.strokes));
}

async function waitForStrokes(page, atLeast) {
  await page.waitForFunction((n) => Number(document.body.dataset.strokes) >= n, atLeast, { timeout: WAIT_MS });
}

/** Number of canvas pixels that are not fully transparent. */
async function paintedPixels(page) {
  return page.evaluate(() => {
    const c = document.getElementById('board');
    const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) n += 1;
    return n;
  });
}

// -------------------------------------------------------------- the test

const HELLO = 'Hello everyone — is the board working? Watch this.';
const WHISPER = 'psst bob: the secret word is "marmalade"';
const AFTER = 'Back to the public channel.';
const XSS = '<img src=x onerror=alert(1)>';
const DAVE = 'Hi all, joining from my phone. I can see the wave!';
const REPLY = 'Welcome, dave! Scroll down for the board.';

async function run() {
  let base = '';
  await must('chat server starts and prints its address', async () => {
    ({ addr: base } = await startServer());
    assert(/^127\.0\.0\.1:\d+$/.test(base), `unexpected address ${base}`);
  });

  await must('headless Chromium launches', async () => {
    assert(fs.existsSync(CHROMIUM), `${CHROMIUM} does not exist (apt-get install chromium)`);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      env: { ...process.env, TMPDIR: TMP, HOME: process.env.HOME || TMP },
      timeout: START_MS,
    });
  });

  const nicks = ['alice', 'bob', 'carol'];
  const infos = [];
  for (const nick of nicks) {
    await must(`${nick} opens http://${base}/ and joins`, async () => {
      const info = await openPage(nick, base);
      await join(info);
      infos.push(info);
    });
  }
  const [a, b, c] = infos.map((i) => i.page);

  await check('the browser and the server agreed on permessage-deflate', async () => {
    for (const page of [a, b, c]) {
      const agreed = await page.evaluate(() => document.body.dataset.extensions || '');
      assert(agreed.includes('permessage-deflate'), `extensions: ${JSON.stringify(agreed)}`);
    }
  });

  await check('every page lists alice, bob and carol', async () => {
    await Promise.all([a, b, c].map((p) => waitForUsers(p, nicks)));
  });

  await check('alice says hello; bob and carol see her nick and text', async () => {
    await say(a, HELLO);
    await Promise.all([b, c, a].map((p) => waitForChat(p, 'alice', HELLO)));
    const time = await b.locator('#messages .msg:not(.system)').last().locator('.time').textContent();
    assert(/^\d\d:\d\d$/.test(time), `.time is ${JSON.stringify(time)}`);
  });

  await check('alice clicks bob in the user list and whispers; bob sees a .whisper', async () => {
    await a.locator('#users li[data-nick="bob"] button.user').click();
    await a.locator('#whisper-target').waitFor({ state: 'visible' });
    const target = await a.locator('#whisper-nick').textContent();
    assert(target === 'bob', `#whisper-target names ${JSON.stringify(target)}`);
    await say(a, WHISPER);
    await waitForChat(b, 'alice', WHISPER, { whisper: true });
    await waitForChat(a, 'alice', WHISPER, { whisper: true });
    const to = await b.locator('#messages .msg.whisper').last().locator('.to').textContent();
    assert(to === 'bob', `whisper is addressed to ${JSON.stringify(to)}`);
  });

  await check('carol never sees the whisper (checked after a later public message reached her)', async () => {
    await a.locator('#whisper-clear').click();
    await a.locator('#whisper-target').waitFor({ state: 'hidden' });
    await say(a, AFTER);
    // One connection, one order: once the later message is here, the whisper would be too.
    await waitForChat(c, 'alice', AFTER);
    await waitForChat(b, 'alice', AFTER);
    const whispers = await c.locator('#messages .whisper').count();
    assert(whispers === 0, `carol has ${whispers} .whisper elements`);
    const text = await c.locator('#messages').textContent();
    assert(!text.includes('marmalade'), 'the whisper text is on carol’s page');
  });

  await check('an HTML payload is shown as text: bob sees exactly it in a .text element', async () => {
    await say(a, XSS);
    await Promise.all([a, b, c].map((p) => waitForChat(p, 'alice', XSS)));
    const texts = await b.locator('#messages .msg:not(.system) .text').allTextContents();
    assert(texts.includes(XSS), `bob's texts: ${JSON.stringify(texts)}`);
  });

  await check('no <img> inside #messages on any page', async () => {
    for (const info of infos) {
      const n = await info.page.locator('#messages img').count();
      assert(n === 0, `${info.nick} has ${n} img elements in #messages`);
    }
  });

  await check('alice draws a stroke with the mouse; her board counts it', async () => {
    await a.locator('#color').fill('#2152d0');
    await a.locator('#width').fill('6');
    const box = await a.locator('#board').boundingBox();
    assert(box && box.width > 50 && box.height > 50, `board box ${JSON.stringify(box)}`);
    const at = (fx, fy) => [box.x + fx * box.width, box.y + fy * box.height];
    await a.mouse.move(...at(0.1, 0.5));
    await a.mouse.down();
    // A wave across the board, then a loop back.
    for (let i = 1; i <= 24; i += 1) {
      const t = i / 24;
      await a.mouse.move(...at(0.1 + 0.8 * t, 0.5 - 0.3 * Math.sin(t * Math.PI * 2)), { steps: 2 });
    }
    await a.mouse.up();
    const n = await strokes(a);
    assert(n >= 10, `alice's board has ${n} strokes`);
    assert((await paintedPixels(a)) > 0, 'alice’s canvas is blank');
  });

  const drawn = await strokes(a);

  await check('bob’s board receives the stroke (body[data-strokes] > 0, pixels painted)', async () => {
    await waitForStrokes(b, Math.max(1, drawn));
    const n = await strokes(b);
    assert(n === drawn, `bob has ${n} strokes, alice drew ${drawn}`);
    assert((await paintedPixels(b)) > 0, 'bob’s canvas is blank');
  });

  // dave is late and on a phone: he gets the board replayed on join.
  let dave = null;
  await check('late joiner dave (phone, 390x844) gets the board replayed', async () => {
    const info = await openPage('dave', base, {
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
    });
    await join(info);
    infos.push(info);
    dave = info.page;
    await waitForStrokes(dave, 1);
    const n = await strokes(dave);
    assert(n === drawn, `dave has ${n} strokes, alice drew ${drawn}`);
    assert((await paintedPixels(dave)) > 0, 'dave’s canvas is blank');
    await Promise.all([a, b, c].map((p) => waitForUsers(p, ['dave'])));
  });

  if (dave) {
    await check('dave taps Send on the phone; bob sees it, answers, and dave sees the answer', async () => {
      await dave.locator('#input').fill(DAVE);
      await dave.locator('#send').tap();
      await Promise.all([a, b, c, dave].map((p) => waitForChat(p, 'dave', DAVE)));
      await say(b, REPLY);
      await Promise.all([a, c, dave].map((p) => waitForChat(p, 'bob', REPLY)));
    });
  }

  await check('no dialog opened, no page error, no CSP violation on any page', async () => {
    const problems = [];
    for (const info of infos) {
      for (const d of info.dialogs) problems.push(`${info.nick}: dialog ${d}`);
      for (const e of info.errors) problems.push(`${info.nick}: pageerror ${e}`);
      for (const v of info.cspViolations) problems.push(`${info.nick}: ${v}`);
    }
    assert(problems.length === 0, problems.join('; '));
  });

  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  await check('screenshot of bob’s page (1200x800) to screenshots/chat.png', async () => {
    // Blur the composer so no caret blinks into the picture.
    await b.evaluate(() => document.activeElement?.blur());
    await b.screenshot({ path: path.join(SCREENSHOTS, 'chat.png'), animations: 'disabled', caret: 'hide' });
  });
  if (dave) {
    await check('phone screenshot of dave’s page (390x844) to screenshots/chat-phone.png', async () => {
      await dave.evaluate(() => document.activeElement?.blur());
      const width = await dave.evaluate(() => document.documentElement.scrollWidth);
      assert(width <= 390, `the phone page is ${width}px wide: it scrolls sideways`);
      await dave.screenshot({ path: path.join(SCREENSHOTS, 'chat-phone.png'), animations: 'disabled', caret: 'hide' });
    });
  }

  // Each phase stops at its own failed `must`; the next still runs.
  for (const phase of [runCluster, runTls]) {
    try {
      await phase();
    } catch (err) {
      if (!(err instanceof Fatal)) throw err;
    }
  }
}

/** Two pages on two nodes of a cluster (one redis-server of the test's own): they see each
 * other, talk and whisper across nodes; one node is killed (-9) and started again on its port,
 * and its page comes back by itself, under its nick, with what it missed exactly once. */
async function runCluster() {
  const TTL_MS = 1500;
  let redisUrl = '';
  await must('cluster: redis-server starts', async () => {
    redisUrl = await startRedis();
  });
  const flags = ['--redis', redisUrl, '--node-ttl-ms', String(TTL_MS)];
  const nodes = [];
  await must('cluster: two chat nodes start on it', async () => {
    nodes.push(await startServer(flags), await startServer(flags));
  });
  const infos = [];
  for (const [nick, node] of [['erin', nodes[0]], ['frank', nodes[1]]]) {
    await must(`cluster: ${nick} opens node ${node.addr} and joins`, async () => {
      const info = await openPage(nick, node.addr);
      await joinWhenAvailable(info);
      infos.push(info);
    });
  }
  const [erin, frank] = infos.map((i) => i.page);
  const chats = (page, text) =>
    page.evaluate(
      (text) => [...document.querySelectorAll('#messages .msg:not(.system) .text')].filter((t) => t.textContent === text).length,
      text,
    );

  await check('cluster: each page lists the member of the other node', async () => {
    await Promise.all([waitForUsers(erin, ['erin', 'frank']), waitForUsers(frank, ['erin', 'frank'])]);
  });
  await check('cluster: a message and a whisper cross nodes', async () => {
    await say(erin, 'hello from node one');
    await Promise.all([waitForChat(frank, 'erin', 'hello from node one'), waitForChat(erin, 'erin', 'hello from node one')]);
    await frank.locator('#users li[data-nick="erin"] button.user').click();
    await say(frank, 'psst, node two here');
    await waitForChat(erin, 'frank', 'psst, node two here', { whisper: true });
    await frank.locator('#whisper-clear').click();
  });

  const missed = ['said while erin was away, one', 'said while erin was away, two'];
  await check('cluster: erin’s node is killed; frank sees her leave (node lost) and talks on', async () => {
    await stopChild(nodes[0].child, 'SIGKILL');
    await erin.waitForFunction(() => document.body.dataset.state !== 'joined', null, { timeout: WAIT_MS });
    await frank.waitForFunction(
      () => ![...document.querySelectorAll('#users li[data-nick]')].some((li) => li.dataset.nick === 'erin'),
      null,
      { timeout: WAIT_MS },
    );
    for (const text of missed) {
      await say(frank, text);
      await waitForChat(frank, 'frank', text);
    }
  });

  await check('cluster: the node starts again on its port; erin’s page rejoins by itself and gets what she missed, once', async () => {
    nodes[0] = await startServer(flags, nodes[0].addr);
    await erin.waitForFunction(() => document.body.dataset.state === 'joined', null, { timeout: WAIT_MS * 2 });
    assert((await erin.locator('#me').textContent()) === 'erin', 'erin came back under another nick');
    for (const text of missed) await waitForChat(erin, 'frank', text);
    for (const text of [...missed, 'hello from node one']) {
      const n = await chats(erin, text);
      assert(n === 1, `erin shows ${JSON.stringify(text)} ${n} times`);
    }
    await say(erin, 'back again');
    await waitForChat(frank, 'erin', 'back again');
    await waitForUsers(frank, ['erin', 'frank']);
  });
}

/** The chat served over TLS: the page loads over https:// and talks over wss:// (a throw-away
 * certificate, accepted by the browser context: headless Chromium refuses a test CA here). */
async function runTls() {
  let node = null;
  await must('tls: chat starts with --tls-cert and --tls-key', async () => {
    const { cert, key } = await makeCertificate();
    node = await startServer(['--tls-cert', cert, '--tls-key', key]);
  });
  const infos = [];
  for (const nick of ['gwen', 'hal']) {
    await must(`tls: ${nick} opens https://${node.addr}/ and joins`, async () => {
      const info = await openPage(nick, node.addr, { ignoreHTTPSErrors: true }, 'https');
      await join(info);
      infos.push(info);
    });
  }
  const [gwen, hal] = infos.map((i) => i.page);
  await check('tls: the page connected with wss://', async () => {
    for (const info of infos) {
      assert(info.sockets.length > 0 && info.sockets.every((u) => u.startsWith('wss://')), `sockets: ${info.sockets}`);
    }
  });
  await check('tls: a message goes from one page to the other', async () => {
    await say(gwen, 'over TLS');
    await waitForChat(hal, 'gwen', 'over TLS');
  });
}

// ------------------------------------------------------------------- main

async function cleanup() {
  finished = true;
  if (browser) {
    const closing = browser.close().catch(() => {});
    await Promise.race([closing, new Promise((r) => setTimeout(r, 5000).unref())]);
  }
  await stopServers().catch(() => {});
  try {
    fs.rmSync(TMP, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  } catch (err) {
    log(`warning: could not remove ${TMP}: ${oneLine(err)}`);
  }
}

function report() {
  if (failures.length) {
    log('');
    log('failures:');
    for (const f of failures) log(`  - ${f}`);
    if (serverLog.length) {
      log('chat server stderr (last lines):');
      for (const l of serverLog.slice(-20)) log(`  | ${l}`);
    }
  }
  log(`e2e: ${passed} passed, ${failures.length} failed`);
}

// Last resort if anything leaves the process early: never leave the server behind.
process.on('exit', () => {
  for (const child of children) if (running(child)) child.kill('SIGKILL');
  try {
    fs.rmSync(TMP, { recursive: true, force: true });
  } catch {
    // Best effort.
  }
});

let exiting = false;
async function finish(extraFailure) {
  if (exiting) return;
  exiting = true;
  if (extraFailure) failures.push(extraFailure);
  await cleanup();
  report();
  process.exit(failures.length ? 1 : 0);
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => finish(`interrupted by ${signal}`));
}

setTimeout(() => finish(`whole test timed out after ${TOTAL_TIMEOUT_MS} ms`), TOTAL_TIMEOUT_MS);

const started = Date.now();
try {
  await run();
} catch (err) {
  if (!(err instanceof Fatal)) failures.push(`unexpected: ${oneLine(err)}`);
}
log(`(took ${((Date.now() - started) / 1000).toFixed(1)} s)`);
await finish();
