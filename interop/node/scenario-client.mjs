#!/usr/bin/env node
// scenario-client.mjs: interop scenarios (cancellation, --timeout,
// sampling, subscriptions, tasks, elicitation ids; first written for the
// twenty-fourth review) with the official TypeScript SDK client as the
// host, mcpbridge in between (mode bridge) or not (mode direct), and
// scenario-server.mjs (or server-everything) as the backend. Run by
// ../ts_scenarios_test.go.
//
//   node scenario-client.mjs SCENARIO 'JSON-CONFIG'
//
// Config keys: mode (bridge|direct), bridge, bridgeFlags, transport
// (stdio|streamableHttp|sse), url, serverJs (scenario-server.mjs),
// everythingJs, node, stderrFile, timeoutMs, plus per-scenario keys
// (honour, multiUrl).
//
// Output: INFO lines and "PASS scenario ..." on stdout, "FAIL scenario:
// reason" on stderr (exit 1).
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { InMemoryTaskStore } from '@modelcontextprotocol/sdk/experimental/tasks/stores/in-memory.js';
import { CreateMessageRequestSchema, ElicitRequestSchema, ListRootsRequestSchema, CallToolResultSchema } from '@modelcontextprotocol/sdk/types.js';
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';

const [scenario, cfgText] = process.argv.slice(2);
const cfg = { mode: 'bridge', node: process.execPath, bridgeFlags: [], timeoutMs: 55000, ...JSON.parse(cfgText) };
const direct = cfg.mode === 'direct';
const rand = () => randomBytes(4).toString('hex');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const info = (s) => process.stdout.write(`INFO ${s}\n`);
class Fail extends Error {}
const check = (cond, msg) => {
  if (!cond) throw new Fail(msg);
};
const short = (v, n = 400) => {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s === undefined ? String(v) : s.length > n ? `${s.slice(0, n)}…` : s;
};
const textOf = (r) => (r?.content || []).filter((c) => c.type === 'text').map((c) => c.text).join('\n');

// Wire records what the client got (its transport's onmessage).
class Tap {
  constructor(inner) {
    this.inner = inner;
    this.log = [];
  }
  async start() {
    this.inner.onmessage = (m, extra) => {
      this.log.push({ t: Date.now(), dir: 'in', msg: m });
      this.onmessage?.(m, extra);
    };
    this.inner.onerror = (e) => this.onerror?.(e);
    this.inner.onclose = () => this.onclose?.();
    await this.inner.start();
  }
  async send(m, o) {
    this.log.push({ t: Date.now(), dir: 'out', msg: m });
    return this.inner.send(m, o);
  }
  async close() {
    return this.inner.close();
  }
  get sessionId() {
    return this.inner.sessionId;
  }
  setProtocolVersion(v) {
    this.inner.setProtocolVersion?.(v);
  }
}

const conns = [];
let onSampling = null; // async (req, extra) => result
let onElicit = null;
const hostSeen = { sampling: [], elicit: [] };

function makeClient(extraCaps = {}, clientOpts = {}) {
  const client = new Client(
    { name: 'scenario', version: '0.0.1' },
    { capabilities: { sampling: {}, elicitation: { form: {}, url: {} }, roots: { listChanged: true }, ...extraCaps }, ...clientOpts },
  );
  client.setRequestHandler(CreateMessageRequestSchema, async (req, extra) => {
    const rec = { t: Date.now(), params: req.params, aborted: null, extraId: extra.requestId };
    hostSeen.sampling.push(rec);
    extra.signal.addEventListener('abort', () => (rec.aborted = Date.now()), { once: true });
    if (onSampling) return onSampling(req, extra, rec);
    return { model: 'scenario', role: 'assistant', content: { type: 'text', text: 'SAMPLED' }, stopReason: 'endTurn' };
  });
  client.setRequestHandler(ElicitRequestSchema, async (req, extra) => {
    hostSeen.elicit.push({ t: Date.now(), params: req.params });
    if (onElicit) return onElicit(req, extra);
    if (req.params.mode === 'url') return { action: 'accept' };
    return { action: 'accept', content: { name: 'SCENARIO' } };
  });
  client.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: [] }));
  return client;
}

function bridgeArgv(url, stdioArgv) {
  const f = [...cfg.bridgeFlags];
  if (cfg.bare && cfg.transport !== 'stdio') return [...f, url]; // a bare URL: streamable HTTP, falling back to SSE
  switch (cfg.transport) {
    case 'stdio':
      return [...f, '--', ...stdioArgv];
    case 'streamableHttp':
      return [...f, '--http', `e=${url}`];
    case 'sse':
      return [...f, '--sse', `e=${url}`];
  }
  throw new Fail(`unknown transport ${cfg.transport}`);
}

async function connect(opts = {}) {
  const stdioArgv = opts.stdioArgv || [cfg.node, cfg.serverJs, 'stdio'];
  const url = opts.url || cfg.url;
  let inner;
  const sp = (command, args) => ({ command, args, env: { ...process.env }, stderr: cfg.stderrFile ? 'pipe' : 'inherit' });
  if (!direct) {
    const args = opts.bridgeArgv || bridgeArgv(url, stdioArgv);
    info(`bridge ${args.join(' ')}`);
    inner = new StdioClientTransport(sp(cfg.bridge, args));
  } else if (cfg.transport === 'stdio') {
    inner = new StdioClientTransport(sp(stdioArgv[0], stdioArgv.slice(1)));
  } else if (cfg.transport === 'streamableHttp') {
    inner = new StreamableHTTPClientTransport(new URL(url));
  } else {
    inner = new SSEClientTransport(new URL(url));
  }
  if (cfg.stderrFile && inner instanceof StdioClientTransport) inner.stderr.pipe(fs.createWriteStream(cfg.stderrFile, { flags: 'a' }));
  const tap = new Tap(inner);
  const client = makeClient(opts.caps, opts.clientOpts);
  await withTimeout(client.connect(tap, { timeout: 15000 }), 20000, 'initialize');
  const c = { client, tap };
  conns.push(c);
  return c;
}

function withTimeout(p, ms, what) {
  let timer;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise((_, rej) => {
      timer = setTimeout(() => rej(new Fail(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]);
}

async function settle(p) {
  const t0 = Date.now();
  try {
    return { ok: true, v: await p, ms: Date.now() - t0, t: Date.now() };
  } catch (e) {
    return { ok: false, e, ms: Date.now() - t0, t: Date.now() };
  }
}
const errStr = (s) => (s.ok ? `result ${short(s.v, 200)}` : `error code=${s.e?.code} ${short(String(s.e?.message), 200)}`);

async function call(client, name, args = {}, opts = {}) {
  return client.callTool({ name, arguments: args }, undefined, { timeout: 15000, ...opts });
}
async function stats(client, name = 'stats') {
  const r = await call(client, name, {});
  return JSON.parse(textOf(r));
}
// waitStats polls stats until pred holds (bounded).
async function waitStats(client, pred, ms, what, name = 'stats') {
  const deadline = Date.now() + ms;
  for (;;) {
    let s;
    try {
      s = await stats(client, name);
    } catch (e) {
      s = { error: String(e?.message ?? e) }; // a backend restarting
    }
    if (!s.error && pred(s)) return s;
    if (Date.now() > deadline) throw new Fail(`timed out after ${ms} ms waiting at the server for ${what}; stats ${short(s, 1500)}`);
    await sleep(150);
  }
}
// openStreams: HTTP requests still open at the server other than the stats
// call asking and the standalone GET / SSE streams.
const openPosts = (s) => s.open.filter((o) => o.method === 'POST' && !/tools\/call:stats/.test(o.rpc));
const openGets = (s) => s.open.filter((o) => o.method === 'GET');

// heardCancel waits (bounded) for a notifications/cancelled naming the
// host's id of sampling request rec, and returns its wire entry or undefined.
// (The wire, not the handler's signal: the TS client ignores a cancellation
// of request id 0, which is the first id a TS server uses.)
async function heardCancel(c, rec, ms = 2000) {
  const hit = () => c.tap.log.find((e) => e.dir === 'in' && e.msg.method === 'notifications/cancelled' && e.msg.params?.requestId === rec.extraId);
  for (const end = Date.now() + ms; !hit() && Date.now() < end; ) await sleep(50);
  return hit();
}

async function echoWorks(c, tag) {
  const m = `${tag}-${rand()}`;
  const r = await call(c.client, 'echo', { message: m }, { timeout: 5000 });
  check(textOf(r) === `Echo: ${m}`, `echo after ${tag}: ${short(r)}`);
}

// ------------------------------------------------------------- scenarios

const scenarios = {
  // The host (TS client) aborts a long tool call: the error comes at once,
  // the server sees the cancellation, the session keeps serving, no answer
  // for the cancelled id reaches the host, and once the tool's time is up
  // no request of it stays open at the server.
  async cancel() {
    const c = await connect();
    const honour = !!cfg.honour;
    const tag = `c-${rand()}`;
    const ac = new AbortController();
    const p = settle(call(c.client, 'slow', { ms: 2500, tag, honour }, { signal: ac.signal, timeout: 20000 }));
    await waitStats(c.client, (s) => s.started[tag], 5000, `slow ${tag} to start`);
    const tAbort = Date.now();
    ac.abort('scenario cancel');
    const s = await withTimeout(p, 5000, 'the aborted call to settle');
    check(!s.ok && s.t - tAbort < 1000, `aborted call: ${errStr(s)} after ${s.t - tAbort} ms`);
    const st = await waitStats(c.client, (x) => x.aborted[tag], 3000, `the server to see the cancellation of ${tag}`);
    info(`server saw the cancellation: ${st.aborted[tag]}`);
    await echoWorks(c, 'cancel');
    await sleep(Math.max(0, tAbort + 2500 + 600 - Date.now()));
    const st2 = await waitStats(c.client, (x) => x.finished[tag], 3000, `${tag} to end`);
    const posts = openPosts(st2);
    const gets = openGets(st2);
    info(`open at the server after the tool ended: POSTs ${short(posts)}, GETs ${gets.length}, sockets ${st2.sockets}`);
    const req = c.tap.log.find((e) => e.dir === 'out' && e.msg.method === 'tools/call' && e.msg.params?.arguments?.tag === tag);
    const resp = c.tap.log.find((e) => e.dir === 'in' && e.msg.id === req.msg.id && ('result' in e.msg || 'error' in e.msg));
    check(!resp, `an answer for the cancelled id reached the host: ${short(resp?.msg)}`);
    if (!direct) {
      check(posts.length === 0, `requests still open at the server ${Date.now() - tAbort} ms after the cancellation: ${short(posts)}`);
      check(gets.length <= 1, `${gets.length} GET streams open at the server`);
    }
    await echoWorks(c, 'cancel-end');
    return `error in ${s.t - tAbort} ms, server saw it, ${posts.length} POSTs open after`;
  },

  // --timeout 1s ends a tool call that runs 2.5 s without progress: -32001
  // at about 1 s, the server sees the cancellation, nothing stays open.
  async timeout() {
    check(!direct, 'bridge only');
    cfg.bridgeFlags = [...cfg.bridgeFlags, '--timeout', '1s'];
    const c = await connect();
    const tag = `t-${rand()}`;
    const s = await settle(call(c.client, 'slow', { ms: 2500, tag, honour: !!cfg.honour }, { timeout: 20000 }));
    check(!s.ok && s.e?.code === -32001 && s.ms < 2000, `timed-out call: ${errStr(s)} after ${s.ms} ms`);
    await waitStats(c.client, (x) => x.aborted[tag], 3000, `the server to see the cancellation of ${tag}`);
    await sleep(2500 + 600 - s.ms);
    const st = await waitStats(c.client, (x) => x.finished[tag], 3000, `${tag} to end`);
    const posts = openPosts(st);
    info(`open after: ${short(posts)}; GETs ${openGets(st).length}; sockets ${st.sockets}`);
    check(posts.length === 0, `requests still open at the server after the timeout: ${short(posts)}`);
    await echoWorks(c, 'timeout');
    return `-32001 after ${s.ms} ms; server saw the cancellation; nothing left open`;
  },

  // The host cancels a tool call while the tool's sampling request (sent
  // with the call's abort signal, as a tool that stops its work on
  // cancellation does) waits on the host: the server cancels its sampling
  // request, and the host's sampling handler must hear it (its signal
  // aborts), as it does when the same client talks to the server directly.
  async cancel_sampling() {
    const c = await connect();
    const tag = `cs-${rand()}`;
    let release;
    onSampling = (req, extra, rec) =>
      new Promise((resolve) => {
        const done = () => resolve({ model: 'scenario', role: 'assistant', content: { type: 'text', text: 'LATE' }, stopReason: 'endTurn' });
        extra.signal.addEventListener('abort', done, { once: true });
        release = done;
        setTimeout(done, 6000);
      });
    const ac = new AbortController();
    const p = settle(call(c.client, 'sample', { tag, withSignal: true }, { signal: ac.signal, timeout: 20000 }));
    const t0 = Date.now();
    while (hostSeen.sampling.length === 0 && Date.now() - t0 < 5000) await sleep(20);
    check(hostSeen.sampling.length === 1, 'the sampling request never reached the host');
    const rec = hostSeen.sampling[0];
    await sleep(200);
    const tAbort = Date.now();
    ac.abort('scenario cancel during sampling');
    const s = await withTimeout(p, 5000, 'the aborted call to settle');
    check(!s.ok, `call resolved despite abort: ${errStr(s)}`);
    // The tool hears its call's cancellation before its sampling request
    // fails: the bridge sends the cancellation first and POSTs the
    // sampling request's error only once the cancellation's POST is done
    // (the twenty-sixth and twenty-eighth reviews found them crossing).
    const st = await waitStats(c.client, (x) => x.sample[tag], 3000, `the server's sampling request of ${tag} to end`);
    info(`server: call aborted (${st.aborted[tag] ?? 'not seen'}), its sampling request ended: ${st.sample[tag]}`);
    check(st.aborted[tag], `the server's tool never heard its call's cancellation (its sampling request ended: ${st.sample[tag]})`);
    const heard = await heardCancel(c, rec);
    const inCancel = c.tap.log.filter((e) => e.dir === 'in' && e.msg.method === 'notifications/cancelled');
    info(`host's sampling request id ${JSON.stringify(rec.extraId)}; host got notifications/cancelled: ${short(inCancel.map((e) => e.msg.params))}; sampling handler aborted ${rec.aborted ? `${rec.aborted - tAbort} ms after the abort` : 'never'}`);
    check(heard, `the server cancelled its sampling request (${st.sample[tag]}) but the host never heard: no notifications/cancelled for the sampling request (host id ${JSON.stringify(rec.extraId)}) within 2 s of the tool call's cancellation; the host's sampling dialog stays open`);
    release?.();
    await echoWorks(c, 'cancel_sampling');
    return `notifications/cancelled for the sampling request ${heard.t - tAbort} ms after the call's cancellation`;
  },

  // The bridge's --max-timeout ends a tool call whose sampling request the
  // host leaves unanswered (a person who walked away): -32001; the server
  // cancels its sampling request, and the host's sampling dialog must be
  // told (its handler's signal aborts).
  async maxtimeout_sampling() {
    check(!direct, 'bridge only');
    cfg.bridgeFlags = [...cfg.bridgeFlags, '--timeout', '1s', '--max-timeout', '2s'];
    const c = await connect();
    const tag = `ms-${rand()}`;
    onSampling = (req, extra) =>
      new Promise((resolve) => {
        const done = () => resolve({ model: 'scenario', role: 'assistant', content: { type: 'text', text: 'NEVER' }, stopReason: 'endTurn' });
        extra.signal.addEventListener('abort', done, { once: true });
        setTimeout(done, 8000);
      });
    const s = await settle(call(c.client, 'sample', { tag, withSignal: true }, { timeout: 20000 }));
    check(!s.ok && s.e?.code === -32001, `call: ${errStr(s)} after ${s.ms} ms`);
    check(s.ms >= 1800 && s.ms < 3500, `-32001 after ${s.ms} ms: want about 2 s (--max-timeout 2s; the idle 1s held by the sampling request)`);
    const rec = hostSeen.sampling[0];
    check(rec, 'no sampling request reached the host');
    // As in cancel_sampling, the tool hears its call's cancellation.
    const st = await waitStats(c.client, (x) => x.sample[tag], 3000, `the server's sampling request of ${tag} to end`);
    info(`server: ${st.aborted[tag] ?? 'call cancellation not seen'}; sampling: ${st.sample[tag]}`);
    check(st.aborted[tag], `the server's tool never heard its call's cancellation (its sampling request ended: ${st.sample[tag]})`);
    const heard = await heardCancel(c, rec);
    info(`host sampling handler aborted: ${rec.aborted ? `${rec.aborted - s.t} ms after the -32001` : 'never'}; notifications/cancelled ${heard ? 'heard' : 'not heard'}`);
    check(heard, `after --max-timeout ended the call the server cancelled its sampling request (${st.sample[tag]}), but no notifications/cancelled for it (host id ${JSON.stringify(rec.extraId)}) reached the host within 2 s; the host's sampling dialog stays open`);
    await echoWorks(c, 'maxtimeout_sampling');
    return `-32001 after ${s.ms} ms; host sampling cancelled`;
  },

  // The server gives up on its own sampling request (the SDK's request
  // timeout, 800 ms): the host's handler hears the cancellation; its late
  // answer is harmless; the tool reports the timeout; the session serves on.
  async server_cancels_sampling() {
    const c = await connect();
    const tag = `sc-${rand()}`;
    onSampling = (req, extra) =>
      new Promise((resolve) => {
        const done = () => resolve({ model: 'scenario', role: 'assistant', content: { type: 'text', text: 'TOO LATE' }, stopReason: 'endTurn' });
        extra.signal.addEventListener('abort', done, { once: true });
        setTimeout(done, 3000);
      });
    const s = await settle(call(c.client, 'sample', { tag, timeoutMs: 800 }, { timeout: 20000 }));
    check(s.ok && s.v.isError && /timed out/i.test(textOf(s.v)), `tool: ${errStr(s)}`);
    const rec = hostSeen.sampling[0];
    const heard = await heardCancel(c, rec);
    check(heard, `the host never heard that the server cancelled its sampling request (id ${JSON.stringify(rec.extraId)})`);
    info(`host got the cancellation ${heard.t - rec.t} ms after the request came; handler aborted: ${!!rec.aborted}`);
    await sleep(300);
    // a second sampling works normally
    onSampling = null;
    const r2 = await call(c.client, 'sample', { tag: `${tag}-2` });
    check(textOf(r2).includes('SAMPLED'), `second sampling: ${short(r2)}`);
    await echoWorks(c, 'server_cancels_sampling');
    return `host heard the cancellation after ${heard.t - rec.t} ms; next sampling ok`;
  },

  // --timeout 1s: a sampling request the host answers after 2.5 s holds
  // its own call; with a streamable backend, another call of the same
  // backend that is silent for 2.5 s still times out at 1 s (its request
  // was not for it).
  async sampling_held() {
    check(!direct, 'bridge only');
    cfg.bridgeFlags = [...cfg.bridgeFlags, '--timeout', '1s'];
    const c = await connect();
    const tag = `sh-${rand()}`;
    onSampling = async () => {
      await sleep(2500);
      return { model: 'scenario', role: 'assistant', content: { type: 'text', text: 'SLOW-SAMPLED' }, stopReason: 'endTurn' };
    };
    const ps = settle(call(c.client, 'sample', { tag }, { timeout: 20000 }));
    while (hostSeen.sampling.length === 0) await sleep(20);
    const pslow = settle(call(c.client, 'slow', { ms: 2500, tag: `${tag}-slow` }, { timeout: 20000 }));
    const [s, sl] = await Promise.all([ps, pslow]);
    check(s.ok && !s.v.isError && textOf(s.v).includes('SLOW-SAMPLED'), `sampling call held by its request: ${errStr(s)} after ${s.ms} ms`);
    info(`silent call on the same backend: ${errStr(sl)} after ${sl.ms} ms`);
    if (cfg.transport === 'streamableHttp') {
      check(!sl.ok && sl.e?.code === -32001 && sl.ms < 2000, `a silent call of the same streamable backend was held by another call's sampling request: ${errStr(sl)} after ${sl.ms} ms`);
    }
    await sleep(1000);
    const st = await stats(c.client);
    check(openPosts(st).length === 0, `open at the server: ${short(openPosts(st))}`);
    return `sampling held ${s.ms} ms; silent call ${sl.ok ? 'ok' : sl.e?.code} after ${sl.ms} ms`;
  },

  // Subscriptions: a refused one is not replayed when the backend starts
  // a new session; an accepted one is, once; after unsubscribe nothing is.
  async subscriptions() {
    check(!direct, 'bridge only');
    const c = await connect();
    const s0 = await stats(c.client);
    const r1 = await settle(c.client.subscribeResource({ uri: 'refuse://one' }, { timeout: 5000 }));
    check(!r1.ok, `refused subscribe answered ${errStr(r1)}`);
    await c.client.subscribeResource({ uri: 'ok://one' }, { timeout: 5000 });
    const drop = async (what) => {
      const before = await stats(c.client);
      await call(c.client, 'drop', {});
      await waitStats(c.client, (x) => x.pid !== before.pid || x.sessions > before.sessions, 10000, `a new backend session after drop ${what}`);
      await sleep(1500); // replays are asked after the initialize
      const st = await stats(c.client);
      const label = cfg.transport === 'stdio' ? 'stdio' : `s${st.sessions}`;
      return { st, subs: st.subscribes.filter((x) => x.session === label) };
    };
    const a = await drop('1');
    info(`replayed after the first drop: ${short(a.subs.map((x) => x.uri))}`);
    check(a.subs.some((x) => x.uri === 'ok://one'), `the accepted subscription was not replayed: ${short(a.subs)}`);
    check(!a.subs.some((x) => x.uri === 'refuse://one'), `the refused subscription was replayed: ${short(a.subs)}`);
    check(a.subs.filter((x) => x.uri === 'ok://one').length === 1, `ok://one replayed ${a.subs.filter((x) => x.uri === 'ok://one').length}x`);
    await c.client.unsubscribeResource({ uri: 'ok://one' }, { timeout: 5000 });
    const b = await drop('2');
    info(`replayed after unsubscribe and a second drop: ${short(b.subs.map((x) => x.uri))}`);
    check(b.subs.length === 0, `replayed after unsubscribe: ${short(b.subs)}`);
    await echoWorks(c, 'subscriptions');
    return `accepted replayed once, refused not, none after unsubscribe (first session ${s0.sessions})`;
  },
};

// Multi: a = scenario-server on stdio, b = one on streamable HTTP
// (cfg.multiUrl, started with SCENARIO_EXTRA_URI=ok://bonly SCENARIO_WILD=1).
scenarios.multi_subscriptions = async function () {
  check(!direct, 'bridge only');
  const args = [...cfg.bridgeFlags, '--stdio', `a=${cfg.node} ${cfg.serverJs} stdio`, '--http', `b=${cfg.multiUrl}`];
  const c = await connect({ bridgeArgv: args });
  const sub = (uri) => settle(c.client.subscribeResource({ uri }, { timeout: 5000 }));
  const res = await c.client.listResources({}, { timeout: 5000 });
  info(`resources: ${short(res.resources.map((r) => r.uri))}`);
  const r1 = await sub('refuse://one');
  check(!r1.ok, `refuse://one: ${errStr(r1)}`);
  for (const u of ['ok://one', 'ok://bonly', 'wild://x']) {
    const r = await sub(u);
    check(r.ok, `subscribe ${u}: ${errStr(r)}`);
  }
  const r5 = await sub('wild-none://y');
  check(!r5.ok, `wild-none://y (nobody has it): ${errStr(r5)}`);
  const sa = await stats(c.client, 'a_stats');
  const sb = await stats(c.client, 'b_stats');
  info(`a saw ${short(sa.subscribes.map((x) => `${x.uri}:${x.ok}`))}; b saw ${short(sb.subscribes.map((x) => `${x.uri}:${x.ok}`))}`);
  check(sa.subscribes.some((x) => x.uri === 'ok://one' && x.ok), 'ok://one did not go to a (first declared)');
  check(sb.subscribes.some((x) => x.uri === 'wild://x' && x.ok), 'wild://x did not reach b after a did not have it');
  // a restarts: only what a took is replayed there
  await call(c.client, 'a_drop', {});
  await waitStats(c.client, (x) => x.pid !== sa.pid, 10000, 'a new a', 'a_stats');
  await sleep(1500);
  const sa2 = await stats(c.client, 'a_stats');
  const aReplayed = sa2.subscribes.map((x) => x.uri).sort();
  info(`a replayed: ${short(aReplayed)}`);
  check(JSON.stringify(aReplayed) === JSON.stringify(['ok://one']), `after a restarted it was asked to subscribe ${short(aReplayed)}, want [ok://one]`);
  // b's session replaced: only what b took
  await call(c.client, 'b_drop', {});
  await waitStats(c.client, (x) => x.sessions > sb.sessions, 10000, 'a new b session', 'b_stats');
  await sleep(1500);
  const sb2 = await stats(c.client, 'b_stats');
  const bReplayed = sb2.subscribes.filter((x) => x.session === `s${sb2.sessions}`).map((x) => x.uri).sort();
  info(`b replayed: ${short(bReplayed)}`);
  check(JSON.stringify(bReplayed) === JSON.stringify(['ok://bonly', 'wild://x']), `after b's session was replaced it was asked to subscribe ${short(bReplayed)}, want [ok://bonly, wild://x]`);
  // unsubscribing goes to the owner
  for (const u of ['wild://x', 'ok://bonly', 'ok://one']) await c.client.unsubscribeResource({ uri: u }, { timeout: 5000 });
  const sa3 = await stats(c.client, 'a_stats');
  const sb3 = await stats(c.client, 'b_stats');
  info(`unsubscribes a=${short(sa3.unsubscribes.map((x) => x.uri))} b=${short(sb3.unsubscribes.map((x) => x.uri))}`);
  check(sb3.unsubscribes.some((x) => x.uri === 'wild://x'), `unsubscribe wild://x did not reach b, its owner: a=${short(sa3.unsubscribes)} b=${short(sb3.unsubscribes)}`);
  check(sa3.unsubscribes.some((x) => x.uri === 'ok://one'), 'unsubscribe ok://one did not reach a');
  return `a replayed ${aReplayed}, b replayed ${bReplayed}, unsubscribes to owners`;
};

// A host that subscribes and at once unsubscribes (both in flight
// together): the server ends unsubscribed; the bridge must not resubscribe
// it when the backend's session is replaced.
scenarios.sub_unsub_race = async function () {
  check(!direct, 'bridge only');
  const c = await connect();
  const [a, b] = await Promise.all([
    settle(c.client.subscribeResource({ uri: 'ok://two' }, { timeout: 5000 })),
    settle(c.client.unsubscribeResource({ uri: 'ok://two' }, { timeout: 5000 })),
  ]);
  check(a.ok && b.ok, `subscribe ${errStr(a)}, unsubscribe ${errStr(b)}`);
  const before = await stats(c.client);
  info(`server saw subscribes ${short(before.subscribes.map((x) => x.uri))} then unsubscribes ${short(before.unsubscribes.map((x) => x.uri))}`);
  await call(c.client, 'drop', {});
  await waitStats(c.client, (x) => x.pid !== before.pid || x.sessions > before.sessions, 10000, 'a new backend session');
  await sleep(1500);
  const st = await stats(c.client);
  const label = cfg.transport === 'stdio' ? 'stdio' : `s${st.sessions}`;
  const replayed = st.subscribes.filter((x) => x.session === label).map((x) => x.uri);
  check(replayed.length === 0, `the host unsubscribed ok://two (subscribe and unsubscribe both answered), yet after the backend's session was replaced the bridge subscribed it again: ${short(replayed)}`);
  return 'nothing replayed';
};

// URL-mode elicitation ids with two backends using the same raw id: the
// host sees NAME/id in elicitation/create, in its
// notifications/elicitation/complete and in a -32042 error's data.
scenarios.multi_elicitation = async function () {
  check(!direct, 'bridge only');
  const multi = !!cfg.multiUrl;
  const args = multi
    ? [...cfg.bridgeFlags, '--stdio', `a=${cfg.node} ${cfg.serverJs} stdio`, '--http', `b=${cfg.multiUrl}`]
    : [...cfg.bridgeFlags, '--', cfg.node, cfg.serverJs, 'stdio'];
  const c = await connect({ bridgeArgv: args });
  const names = multi ? ['a', 'b'] : [''];
  const out = [];
  for (const n of names) {
    const tool = n ? `${n}_url_elicit` : 'url_elicit';
    const want = n ? `${n}/same` : 'same';
    const since = c.tap.log.length;
    const r = await call(c.client, tool, { id: 'same' });
    check(textOf(r).includes('accept'), `${tool}: ${short(r)}`);
    const el = hostSeen.elicit[hostSeen.elicit.length - 1];
    check(el?.params.elicitationId === want, `${tool}: elicitation/create elicitationId ${JSON.stringify(el?.params.elicitationId)}, want ${want}`);
    const done = c.tap.log.slice(since).filter((e) => e.dir === 'in' && e.msg.method === 'notifications/elicitation/complete');
    check(done.length === 1 && done[0].msg.params.elicitationId === want, `${tool}: elicitation/complete ${short(done.map((e) => e.msg.params))}, want ${want}`);
    const s = await settle(c.client.callTool({ name: tool, arguments: { id: 'same', errorPath: true } }, undefined, { timeout: 5000 }));
    check(!s.ok && s.e?.code === -32042, `${tool} errorPath: ${errStr(s)}`);
    const ids = (s.e.data?.elicitations || []).map((x) => x.elicitationId);
    check(ids.length === 1 && ids[0] === want, `${tool} -32042 data ids ${short(ids)}, want [${want}]`);
    out.push(want);
  }
  return `ids ${out.join(', ')} in create, complete and -32042`;
};

// Tasks the host runs for a backend's sampling request
// (server-everything's trigger-sampling-request-async): the backend polls
// the host's tasks/get and fetches tasks/result; with several backends
// each may ask only about its own task.
scenarios.async_sampling = async function () {
  const multi = !!cfg.multiUrl;
  const everything = [cfg.node, cfg.everythingJs, 'stdio'];
  const opts = {
    caps: { tasks: { list: {}, cancel: {}, requests: { sampling: { createMessage: {} }, elicitation: { create: {} } } } },
    clientOpts: { taskStore: new InMemoryTaskStore() },
    stdioArgv: everything,
  };
  if (!direct) {
    opts.bridgeArgv = multi
      ? [...cfg.bridgeFlags, '--stdio', `a=${everything.join(' ')}`, '--http', `b=${cfg.multiUrl}`]
      : bridgeArgv(cfg.url, everything);
  }
  const c = await connect(opts);
  onSampling = async (req, extra) => {
    const result = { model: 'scenario', role: 'assistant', content: { type: 'text', text: `ASYNC-SAMPLED ${req.params.messages[0].content.text}` }, stopReason: 'endTurn' };
    if (req.params.task && extra.taskStore) {
      const task = await extra.taskStore.createTask({ ttl: extra.taskRequestedTtl ?? 60000 });
      setTimeout(() => extra.taskStore.storeTaskResult(task.taskId, 'completed', result).catch((e) => info(`storeTaskResult: ${e.message}`)), 1500);
      return { task };
    }
    return result;
  };
  const names = multi ? ['a', 'b'] : [''];
  const tool = (n) => (n ? `${n}_trigger-sampling-request-async` : 'trigger-sampling-request-async');
  // list until the capability-gated tool shows (bounded)
  for (let i = 0; ; i++) {
    const tl = await c.client.listTools({}, { timeout: 5000 });
    if (names.every((n) => tl.tools.some((t) => t.name === tool(n)))) break;
    check(i < 30, `tools lack ${names.map(tool)}: ${short(tl.tools.map((t) => t.name))}`);
    await sleep(200);
  }
  const rs = await Promise.all(names.map((n) => settle(call(c.client, tool(n), { prompt: `p-${n || 'x'}` }, { timeout: 30000 }))));
  rs.forEach((r, i) => {
    const t = r.ok ? textOf(r.v) : '';
    info(`${tool(names[i])}: ${r.ok ? short(t, 300) : errStr(r)}`);
    check(r.ok && !r.v.isError && t.includes('[COMPLETED]') && t.includes(`ASYNC-SAMPLED`) && t.includes(`p-${names[i] || 'x'}`), `${tool(names[i])}: ${r.ok ? short(t, 800) : errStr(r)}`);
  });
  await echoWorks(c, 'async_sampling').catch(() => {}); // everything has echo
  return `${names.length} async samplings completed through the host's tasks`;
};

// Many calls cancelled at once, and calls cancelled right after they were
// sent: each one the server started must see its cancellation, nothing may
// stay open, the session serves on.
scenarios.cancel_many = async function () {
  const c = await connect();
  const N = 12;
  const tags = Array.from({ length: N }, (_, i) => `m${i}-${rand()}`);
  const acs = tags.map(() => new AbortController());
  const ps = tags.map((tag, i) => settle(call(c.client, 'slow', { ms: 2000, tag, honour: true }, { signal: acs[i].signal, timeout: 20000 })));
  await waitStats(c.client, (x) => tags.every((t) => x.started[t]), 5000, 'all slow calls to start');
  acs.forEach((ac) => ac.abort('many'));
  await Promise.all(ps);
  // cancelled as soon as sent
  const now = Array.from({ length: N }, (_, i) => `n${i}-${rand()}`);
  const ps2 = now.map((tag) => {
    const ac = new AbortController();
    const p = settle(call(c.client, 'slow', { ms: 1500, tag, honour: true }, { signal: ac.signal, timeout: 20000 }));
    ac.abort('at once');
    return p;
  });
  await Promise.all(ps2);
  await sleep(2500);
  const st = await stats(c.client);
  const unaware = [...tags, ...now].filter((t) => st.started[t] && !st.aborted[t]);
  const notStarted = now.filter((t) => !st.started[t]).length;
  info(`cancelled-at-once: ${notStarted}/${N} never started; ran without hearing the cancellation: ${unaware.length} (${short(unaware)}); open POSTs ${openPosts(st).length}; GETs ${openGets(st).length}; sockets ${st.sockets}`);
  await echoWorks(c, 'cancel_many');
  check(tags.every((t) => st.aborted[t]), `calls cancelled while running that the server never saw cancelled: ${short(tags.filter((t) => !st.aborted[t]))}`);
  if (!direct) check(openPosts(st).length === 0, `open at the server: ${short(openPosts(st))}`);
  // A call cancelled as soon as sent must not run unaware: the bridge holds
  // a cancellation until its request's POST was answered, so it cannot
  // reach the server first (the twenty-sixth review found it could).
  check(unaware.length === 0, `calls that ran without their cancellation: ${short(unaware)}`);
  return `${N} running cancelled, ${N} cancelled at once (${notStarted} never started, ${unaware.length} ran unaware); ${st.sockets} sockets`;
};

// A call whose answer stream the server closed (polling, SDK event
// store) is cancelled by the host while the bridge waits to resume it:
// no resumption after the cancellation, nothing left open, the server sees
// the cancellation.
scenarios.cancel_polled = async function () {
  const c = await connect();
  const tag = `p-${rand()}`;
  const ac = new AbortController();
  const p = settle(call(c.client, 'slow', { ms: 4000, tag, honour: !!cfg.honour, closeAfter: 300 }, { signal: ac.signal, timeout: 20000 }));
  await waitStats(c.client, (x) => x.started[tag], 5000, 'slow to start');
  await sleep(cfg.cancelAfter ?? 900);
  const tAbort = Date.now();
  ac.abort('cancel while polled');
  const s = await withTimeout(p, 5000, 'the aborted call');
  check(!s.ok, `call: ${errStr(s)}`);
  await waitStats(c.client, (x) => x.aborted[tag], 3000, 'the server to see the cancellation');
  await sleep(Math.max(0, tAbort + 3100 + 800 - Date.now()));
  const st = await waitStats(c.client, (x) => x.finished[tag], 3000, 'slow to end');
  const resumes = st.requests.filter((r) => r.method === 'GET' && r.lei);
  const late = resumes.filter((r) => r.t > tAbort + 100);
  info(`server closed ${st.closed ?? 0} streams; resumptions ${resumes.length} (${late.length} after the cancellation); open POSTs ${openPosts(st).length}, GETs ${openGets(st).length}`);
  check(late.length === 0, `the bridge resumed the cancelled call's stream after the cancellation: ${short(late)}`);
  check(openPosts(st).length === 0 && openGets(st).length <= 1, `open at the server: ${short(st.open)}`);
  await echoWorks(c, 'cancel_polled');
  return `server closed ${st.closed ?? 0} streams; ${resumes.length} resumptions before the cancel, none after`;
};

async function closeAll() {
  for (const { client, tap } of conns.splice(0)) {
    try {
      if (tap.inner instanceof StreamableHTTPClientTransport) await withTimeout(tap.inner.terminateSession(), 3000, 'terminate').catch(() => {});
      await withTimeout(client.close(), 8000, 'close');
    } catch (e) {
      info(`close: ${e.message}`);
    }
  }
}

function dump() {
  for (const c of conns) {
    process.stderr.write('  last wire messages:\n');
    const t0 = c.tap.log[0]?.t ?? 0;
    for (const e of c.tap.log.slice(-25)) process.stderr.write(`    +${e.t - t0}ms ${e.dir === 'out' ? '→' : '←'} ${short(e.msg, 260)}\n`);
  }
}

async function main() {
  const fn = scenarios[scenario];
  if (!fn) {
    process.stderr.write(`FAIL ${scenario}: unknown scenario\n`);
    process.exit(2);
  }
  const watchdog = setTimeout(async () => {
    process.stderr.write(`FAIL ${scenario}: watchdog after ${cfg.timeoutMs} ms\n`);
    dump();
    await Promise.race([closeAll(), sleep(5000)]);
    process.exit(1);
  }, cfg.timeoutMs);
  const t0 = Date.now();
  try {
    const detail = await fn();
    clearTimeout(watchdog);
    await Promise.race([closeAll(), sleep(10000)]);
    process.stdout.write(`PASS ${scenario} [${cfg.mode} ${cfg.transport}] in ${Date.now() - t0} ms: ${detail}\n`);
    process.exit(0);
  } catch (e) {
    clearTimeout(watchdog);
    const why = e instanceof Fail ? e.message : `${e?.name}: ${e?.message}${e?.code !== undefined ? ` (code ${e.code})` : ''}`;
    process.stderr.write(`FAIL ${scenario} [${cfg.mode} ${cfg.transport}]: ${why}\n`);
    dump();
    await Promise.race([closeAll(), sleep(10000)]);
    process.exit(1);
  }
}

main();
