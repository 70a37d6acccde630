#!/usr/bin/env node
// client.mjs: interop driver for mcpbridge. It plays the MCP host with the
// official TypeScript SDK client, runs ONE scenario and exits 0 (PASS) or 1
// (FAIL, reason on stderr).
//
//   node client.mjs SCENARIO 'JSON-CONFIG'
//
// Config keys:
//   mode        "bridge" (default) or "direct" (no bridge: talk to server-everything itself)
//   bridge      path of the mcpbridge binary (mode bridge)
//   bridgeFlags extra flags put before the backend spec, e.g. ["--log-level","debug"]
//   transport   "stdio" | "streamableHttp" | "sse": how the backend is reached
//   serverJs    path of server-everything's dist/index.js
//   node        node binary for stdio backends (default: this node)
//   url         backend URL for streamableHttp (.../mcp) and sse (.../sse)
//   multiUrl    streamable-HTTP URL of a server-everything started with MARKER=beta (scenario multi)
//   stderrFile  append the bridge's (or stdio server's) stderr there; default: inherit
//   spyDir      directory for backend spy logs (default: os.tmpdir())
//   timeoutMs   watchdog for the whole run (default 55000)
//
// Output: "INFO ..." / "WARN ..." lines and a final "PASS <scenario> ..." on
// stdout; "FAIL <scenario>: reason" on stderr.
//
// Every message the client receives is recorded on the wire (a raw tap on the
// child's stdout for stdio, the transport's onmessage otherwise); each stdout
// line must be a strict JSON-RPC 2.0 message, or the scenario fails.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  CreateTaskResultSchema as TCreateTaskResultSchema,
  CallToolResultSchema as TCallToolResultSchema,
  ListTasksResultSchema as TListTasksResultSchema,
} from '@modelcontextprotocol/sdk/types.js';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const [scenario, cfgText] = process.argv.slice(2);
if (!scenario || !cfgText) {
  process.stderr.write('usage: node client.mjs SCENARIO JSON-CONFIG\n');
  process.exit(2);
}
const cfg = { mode: 'bridge', node: process.execPath, bridgeFlags: [], timeoutMs: 55000, ...JSON.parse(cfgText) };
const direct = cfg.mode === 'direct';
const rand = () => randomBytes(4).toString('hex');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const info = (s) => process.stdout.write(`INFO ${s}\n`);
const warn = (s) => process.stdout.write(`WARN ${s}\n`);

class Fail extends Error {}
function check(cond, msg) {
  if (!cond) throw new Fail(msg);
}
const short = (v, n = 300) => {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s === undefined ? String(v) : s.length > n ? `${s.slice(0, n)}…(${s.length} chars)` : s;
};

// ---------------------------------------------------------------- wire tap

class Wire {
  constructor(label) {
    this.label = label;
    this.log = []; // {t, dir: 'in'|'out', msg}
    this.waiters = new Set();
    this.violations = [];
  }
  record(dir, msg) {
    const e = { t: Date.now(), dir, msg };
    this.log.push(e);
    for (const w of this.waiters) {
      if (w.pred(e)) {
        this.waiters.delete(w);
        clearTimeout(w.timer);
        w.resolve(e);
      }
    }
  }
  mark() {
    return this.log.length;
  }
  find(pred, since = 0) {
    for (let i = since; i < this.log.length; i++) if (pred(this.log[i])) return this.log[i];
    return undefined;
  }
  filter(pred, since = 0) {
    return this.log.slice(since).filter(pred);
  }
  // waitFor resolves with the first entry at index >= since matching pred.
  waitFor(pred, ms, what, since = 0) {
    const hit = this.find(pred, since);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve };
      w.timer = setTimeout(() => {
        this.waiters.delete(w);
        reject(new Fail(`timed out after ${ms} ms waiting for ${what} (${this.label})`));
      }, ms);
      this.waiters.add(w);
    });
  }
}

const isNote = (method) => (e) => e.dir === 'in' && e.msg.method === method && e.msg.id === undefined;

// validateJSONRPC returns an error string, or '' for a valid JSON-RPC 2.0 message.
function validateJSONRPC(m) {
  if (m === null || typeof m !== 'object' || Array.isArray(m)) return 'not a JSON object (batches are not allowed)';
  if (m.jsonrpc !== '2.0') return `jsonrpc is ${JSON.stringify(m.jsonrpc)}, want "2.0"`;
  const hasId = 'id' in m;
  if (hasId && !(typeof m.id === 'string' || (typeof m.id === 'number' && Number.isInteger(m.id)))) {
    return `bad id ${JSON.stringify(m.id)}`;
  }
  if ('method' in m) {
    if (typeof m.method !== 'string') return 'method is not a string';
    if ('result' in m || 'error' in m) return 'request/notification with result or error';
    if ('params' in m && (m.params === null || typeof m.params !== 'object')) return 'params is not an object/array';
    return '';
  }
  if (!hasId) return 'response without id';
  if (('result' in m) === ('error' in m)) return 'response needs exactly one of result/error';
  if ('error' in m) {
    const e = m.error;
    if (!e || typeof e !== 'object' || !Number.isInteger(e.code) || typeof e.message !== 'string') {
      return `malformed error object ${short(e, 200)}`;
    }
  }
  return '';
}

// RawLineTap splits a child's stdout into lines itself (independently of the
// SDK's reader), validates every line and records the messages on the wire.
class RawLineTap {
  constructor(wire) {
    this.wire = wire;
    this.pend = [];
    this.lineNo = 0;
    this.dec = new TextDecoder('utf-8', { fatal: true });
  }
  data(chunk) {
    let start = 0;
    let i;
    while ((i = chunk.indexOf(0x0a, start)) !== -1) {
      this.pend.push(chunk.subarray(start, i));
      const buf = Buffer.concat(this.pend);
      this.pend = [];
      start = i + 1;
      this.line(buf);
    }
    if (start < chunk.length) this.pend.push(chunk.subarray(start));
  }
  line(buf) {
    this.lineNo++;
    let text;
    try {
      text = this.dec.decode(buf);
    } catch {
      this.wire.violations.push(`stdout line ${this.lineNo} is not valid UTF-8`);
      return;
    }
    if (text.endsWith('\r')) text = text.slice(0, -1);
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      this.wire.violations.push(`stdout line ${this.lineNo} is not JSON: ${short(text, 200)}`);
      return;
    }
    const bad = validateJSONRPC(msg);
    if (bad) {
      this.wire.violations.push(`stdout line ${this.lineNo}: ${bad}: ${short(text, 200)}`);
      return;
    }
    this.wire.record('in', msg);
  }
  end() {
    const rest = Buffer.concat(this.pend);
    if (rest.length > 0) this.wire.violations.push(`stdout ended with ${rest.length} bytes without a newline: ${short(rest.toString('utf8'), 200)}`);
    this.pend = [];
  }
}

// TapTransport wraps an SDK transport and records every message both ways.
class TapTransport {
  constructor(inner, wire) {
    this.inner = inner;
    this.wire = wire;
    this.raw = inner instanceof StdioClientTransport;
    this.exit = null; // {code, signal, t} once a stdio child exited
  }
  async start() {
    this.inner.onmessage = (m, extra) => {
      if (!this.raw) this.wire.record('in', m);
      this.onmessage?.(m, extra);
    };
    this.inner.onerror = (e) => this.onerror?.(e);
    this.inner.onclose = () => this.onclose?.();
    const p = this.inner.start();
    if (this.raw) {
      const proc = this.inner._process; // set synchronously by start()
      check(proc, 'StdioClientTransport did not spawn a process');
      this.proc = proc;
      const tap = new RawLineTap(this.wire);
      proc.stdout.on('data', (c) => tap.data(c));
      proc.stdout.on('end', () => tap.end());
      proc.on('exit', (code, signal) => (this.exit = { code, signal, t: Date.now() }));
    }
    await p;
  }
  async send(m, opts) {
    this.wire.record('out', m);
    return this.inner.send(m, opts);
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

// ------------------------------------------------- backend-side recorders

// Backend-side record of the messages that reached / left the backend:
// {t, dir: 'to-backend'|'from-backend', msg}.
class BackendLog {
  constructor() {
    this.entries = [];
    this.files = [];
  }
  add(dir, msg) {
    for (const m of Array.isArray(msg) ? msg : [msg]) this.entries.push({ t: Date.now(), dir, msg: m });
  }
  // refresh re-reads spy log files (stdio backends).
  refresh() {
    if (this.files.length === 0) return;
    this.entries = [];
    for (const f of this.files) {
      let text = '';
      try {
        text = fs.readFileSync(f, 'utf8');
      } catch {
        continue;
      }
      for (const l of text.split('\n')) {
        if (!l) continue;
        const r = JSON.parse(l);
        if (r.dir === 'exit' || r.truncated) continue;
        let m;
        try {
          m = JSON.parse(r.line);
        } catch {
          continue; // not JSON: not ours to judge here
        }
        for (const x of Array.isArray(m) ? m : [m]) this.entries.push({ t: r.t, dir: r.dir, msg: x });
      }
    }
  }
  async waitFor(pred, ms, what) {
    const deadline = Date.now() + ms;
    for (;;) {
      this.refresh();
      const hit = this.entries.find(pred);
      if (hit) return hit;
      if (Date.now() > deadline) throw new Fail(`timed out after ${ms} ms waiting at the backend for ${what}`);
      await sleep(50);
    }
  }
}

function spyWrap(log, argv) {
  const f = path.join(cfg.spyDir || os.tmpdir(), `mcpbridge-spy-${process.pid}-${rand()}.jsonl`);
  fs.writeFileSync(f, '');
  log.files.push(f);
  cleanups.push(() => fs.rmSync(f, { force: true }));
  return [cfg.node, path.join(HERE, 'spy.mjs'), f, '--', ...argv];
}

// startRecordingProxy puts a transparent HTTP proxy on 127.0.0.1 in front of
// target's origin and records JSON-RPC bodies both ways (JSON and SSE).
async function startRecordingProxy(target, log) {
  const t = new URL(target);
  const sseParser = (dir) => {
    let pend = '';
    let data = [];
    return (chunk) => {
      pend += chunk;
      let i;
      while ((i = pend.indexOf('\n')) !== -1) {
        let line = pend.slice(0, i);
        pend = pend.slice(i + 1);
        if (line.endsWith('\r')) line = line.slice(0, -1);
        if (line === '') {
          if (data.length) {
            try {
              log.add(dir, JSON.parse(data.join('\n')));
            } catch {
              /* endpoint event etc. */
            }
          }
          data = [];
        } else if (line.startsWith('data:')) {
          data.push(line.slice(5).replace(/^ /, ''));
        }
      }
    };
  };
  const server = http.createServer((req, res) => {
    const body = [];
    const preq = http.request(
      { host: t.hostname, port: t.port, method: req.method, path: req.url, headers: { ...req.headers, host: t.host } },
      (pres) => {
        res.writeHead(pres.statusCode, pres.headers);
        res.flushHeaders();
        const ct = String(pres.headers['content-type'] || '');
        const sse = ct.includes('text/event-stream') ? sseParser('from-backend') : null;
        const json = ct.includes('application/json') ? [] : null;
        pres.setEncoding('utf8');
        pres.on('data', (c) => {
          sse?.(c);
          json?.push(c);
          res.write(c);
        });
        pres.on('end', () => {
          if (json && json.length) {
            try {
              log.add('from-backend', JSON.parse(json.join('')));
            } catch {
              /* not JSON-RPC */
            }
          }
          res.end();
        });
        pres.on('error', () => res.destroy());
      },
    );
    preq.on('error', (e) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`proxy: ${e.message}`);
    });
    res.on('close', () => preq.destroy());
    req.on('data', (c) => {
      body.push(c);
      preq.write(c);
    });
    req.on('end', () => {
      if (req.method === 'POST' && body.length) {
        try {
          log.add('to-backend', JSON.parse(Buffer.concat(body).toString('utf8')));
        } catch {
          /* not JSON */
        }
      }
      preq.end();
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  cleanups.push(() => {
    server.closeAllConnections?.();
    server.close();
  });
  const u = new URL(target);
  u.host = `127.0.0.1:${server.address().port}`;
  return u.toString();
}

// ----------------------------------------------------------- connection

const cleanups = [];
const calls = { sampling: [], elicit: [], roots: 0 };
let samplingBarrier = null; // {n, waiting: [resolve...]} to hold concurrent sampling requests

const shq = (s) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

function backendArgv() {
  return [cfg.node, cfg.serverJs, 'stdio'];
}

// bridgeArgs builds the mcpbridge command line for one backend reached over
// cfg.transport. stdioArgv overrides the stdio backend command.
function bridgeArgs(url, stdioArgv) {
  const f = [...cfg.bridgeFlags];
  switch (cfg.transport) {
    case 'stdio':
      return [...f, '--', ...(stdioArgv || backendArgv())];
    case 'streamableHttp':
      return [...f, url]; // the bare-URL form: streamable HTTP first
    case 'sse':
      return [...f, '--sse', `e=${url}`];
    default:
      throw new Fail(`unknown transport ${cfg.transport}`);
  }
}

function makeClient() {
  const client = new Client(
    { name: 'mcpbridge-interop', version: '0.0.1' },
    { capabilities: { sampling: {}, elicitation: { form: {}, url: {} }, roots: { listChanged: true } } },
  );
  client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
    calls.sampling.push(req.params);
    if (samplingOverride) return samplingOverride(req);
    const text = req.params.messages.map((m) => m.content?.text ?? '').join(' ');
    if (samplingBarrier) {
      const b = samplingBarrier;
      await new Promise((resolve) => {
        b.waiting.push(resolve);
        if (b.waiting.length >= b.n) b.waiting.forEach((r) => r());
        setTimeout(() => {
          b.timedOut = true;
          resolve();
        }, 5000).unref(); // bounded
      });
    }
    return {
      model: 'interop-model',
      role: 'assistant',
      content: { type: 'text', text: `INTEROP-SAMPLED[${text}]` },
      stopReason: 'endTurn',
    };
  });
  client.setRequestHandler(ElicitRequestSchema, async (req) => {
    calls.elicit.push(req.params);
    if (elicitOverride) return elicitOverride(req);
    if (req.params.mode === 'url') return { action: 'accept' };
    return { action: 'accept', content: { name: 'Interop Tester', check: true, email: 'interop@example.com', integer: 7 } };
  });
  client.setRequestHandler(ListRootsRequestSchema, async () => {
    calls.roots++;
    return { roots: [{ uri: 'file:///tmp/interop', name: 'interop' }] };
  });
  client.onerror = (e) => clientErrors.push(String(e?.message ?? e));
  return client;
}
const clientErrors = [];

// connect starts the client against the bridge (or the server directly).
// opts.stdioArgv overrides the stdio backend command; opts.url the backend URL;
// opts.bridgeArgv replaces the whole bridge argument list.
async function connect(opts = {}) {
  const wire = new Wire(direct ? `direct ${cfg.transport}` : `bridge→${cfg.transport}`);
  const url = opts.url || cfg.url;
  let inner;
  const stdioParams = (command, args) => ({
    command,
    args,
    env: { ...process.env },
    stderr: cfg.stderrFile ? 'pipe' : 'inherit',
  });
  if (!direct) {
    check(cfg.bridge, 'config.bridge is required in bridge mode');
    const args = opts.bridgeArgv || bridgeArgs(url, opts.stdioArgv);
    info(`bridge: ${[cfg.bridge, ...args].map(shq).join(' ')}`);
    inner = new StdioClientTransport(stdioParams(cfg.bridge, args));
  } else if (cfg.transport === 'stdio') {
    const argv = opts.stdioArgv || backendArgv();
    inner = new StdioClientTransport(stdioParams(argv[0], argv.slice(1)));
  } else if (cfg.transport === 'streamableHttp') {
    inner = new StreamableHTTPClientTransport(new URL(url));
  } else if (cfg.transport === 'sse') {
    inner = new SSEClientTransport(new URL(url));
  } else {
    throw new Fail(`unknown transport ${cfg.transport}`);
  }
  if (cfg.stderrFile && inner instanceof StdioClientTransport) {
    inner.stderr.pipe(fs.createWriteStream(cfg.stderrFile, { flags: 'a' }));
  }
  const transport = new TapTransport(inner, wire);
  const client = makeClient();
  const t0 = Date.now();
  await withTimeout(client.connect(transport, { timeout: 15000 }), 20000, 'initialize');
  const initResp = wire.find((e) => e.dir === 'in' && e.msg.result?.protocolVersion !== undefined);
  info(`initialized in ${Date.now() - t0} ms; server ${short(client.getServerVersion())}; protocol ${initResp?.msg.result.protocolVersion}`);
  const conn = { client, transport, wire };
  conns.push(conn);
  return conn;
}
const conns = [];

function withTimeout(p, ms, what) {
  let timer;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Fail(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]);
}

async function closeAll() {
  for (const { client, transport, wire } of conns.splice(0)) {
    try {
      if (transport.inner instanceof StreamableHTTPClientTransport) {
        await withTimeout(transport.inner.terminateSession(), 3000, 'terminate session').catch(() => {});
      }
      const t0 = Date.now();
      await withTimeout(client.close(), 8000, 'close');
      if (transport.proc) {
        const ex = transport.exit;
        if (!ex) warn(`${wire.label}: child still running after close`);
        else if (ex.t - t0 > 1900 || ex.signal) {
          warn(`${wire.label}: child did not exit by itself within 2 s of stdin EOF (exit code=${ex.code} signal=${ex.signal} after ${ex.t - t0} ms)`);
        }
      }
    } catch (e) {
      warn(`close: ${e.message}`);
    }
  }
  for (const c of cleanups.splice(0)) {
    try {
      c();
    } catch {
      /* ignore */
    }
  }
}

// ------------------------------------------------------------- helpers

async function listAllTools(client) {
  const out = [];
  let cursor;
  for (let i = 0; i < 20; i++) {
    const r = await client.listTools(cursor ? { cursor } : {}, { timeout: 10000 });
    out.push(...r.tools);
    if (!r.nextCursor) break;
    cursor = r.nextCursor;
  }
  return out;
}

async function listAllResources(client) {
  const out = [];
  let cursor;
  for (let i = 0; i < 20; i++) {
    const r = await client.listResources(cursor ? { cursor } : {}, { timeout: 10000 });
    out.push(...r.resources);
    if (!r.nextCursor) break;
    cursor = r.nextCursor;
  }
  return out;
}

// ensureTools lists tools until all names are there. The capability-gated
// tools appear only after server-everything's tools/list_changed, so when
// some are missing it waits for the next notifications/tools/list_changed
// and lists again (bounded by ms).
async function ensureTools({ client, wire }, names, ms = 8000) {
  const deadline = Date.now() + ms;
  let changes = 0;
  for (;;) {
    const since = wire.mark();
    const tools = await listAllTools(client);
    const have = new Set(tools.map((t) => t.name));
    const missing = names.filter((n) => !have.has(n));
    if (missing.length === 0) {
      const seen = wire.filter(isNote('notifications/tools/list_changed')).length;
      info(`tools/list has ${tools.length} tools incl. ${names.join(', ')}; tools/list_changed seen ${seen}x`);
      return tools;
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new Fail(
        `tools missing from tools/list: ${missing.join(', ')} (have ${[...have].join(', ')}); ` +
          `notifications/tools/list_changed received ${wire.filter(isNote('notifications/tools/list_changed')).length}x. ` +
          `The capability-gated tools appear only if the client's capabilities reach the backend and its list_changed reaches the client.`,
      );
    }
    await wire.waitFor(isNote('notifications/tools/list_changed'), left, 'notifications/tools/list_changed', since).then(
      () => changes++,
      () => {},
    );
    await sleep(50);
  }
}

function textOf(result) {
  return (result.content || [])
    .filter((c) => c.type === 'text')
    .map((c) => c.text)
    .join('\n');
}

async function call(client, name, args = {}, opts = {}) {
  const r = await client.callTool({ name, arguments: args }, undefined, { timeout: 30000, ...opts });
  check(!r.isError, `${name} returned isError: ${short(r.content)}`);
  return r;
}

// outgoing request entry of the latest tools/call for a tool name
function outCall(wire, name, since = 0) {
  const hits = wire.filter((e) => e.dir === 'out' && e.msg.method === 'tools/call' && e.msg.params?.name === name, since);
  return hits[hits.length - 1];
}

function progressFor(wire, token, since = 0) {
  return wire.filter((e) => isNote('notifications/progress')(e) && e.msg.params?.progressToken === token, since);
}

// ------------------------------------------------------------ scenarios

const CAP_TOOLS = ['trigger-sampling-request', 'trigger-elicitation-request', 'get-roots-list'];

const BIGN = 100 * 1024;
const bigText = (tag) => `${tag}:` + 'x'.repeat(BIGN);
const MAXMSG = '65536';
let samplingOverride = null; // async (req) => result
let elicitOverride = null;

// settle runs p and returns {ok, v|e, ms}
async function settle(p) {
  const t0 = Date.now();
  try {
    const v = await p;
    return { ok: true, v, ms: Date.now() - t0 };
  } catch (e) {
    return { ok: false, e, ms: Date.now() - t0 };
  }
}
const errStr = (s) => (s.ok ? `result ${short(s.v, 200)}` : `error code=${s.e?.code} ${short(String(s.e?.message), 200)}`);

async function stillServes(c, tag) {
  const m = `still-${tag}-${rand()}`;
  const r = await call(c.client, 'echo', { message: m }, { timeout: 5000 });
  check(textOf(r) === `Echo: ${m}`, `echo after ${tag}: ${short(textOf(r))}`);
}

const scenarios = {
  // An oversized backend answer (get-env with a 100 KiB variable; the TS SDK
  // server writes {result, jsonrpc, id}) ends the call at once with an error;
  // an oversized host request (the TS SDK client writes {method, params,
  // jsonrpc, id}) gets -32600 under its id; the bridge keeps serving.
  async oversize_answer() {
    check(!direct, 'bridge only');
    cfg.bridgeFlags = [...cfg.bridgeFlags, '--max-message', MAXMSG, '--timeout', '15s'];
    process.env.INTEROP_BIG = 'y'.repeat(BIGN); // stdio backend inherits it; HTTP servers were started with it
    const c = await connect(cfg.bigUrl ? { url: cfg.bigUrl } : {});
    delete process.env.INTEROP_BIG;
    const since = c.wire.mark();
    const s = await settle(c.client.callTool({ name: 'get-env', arguments: {} }, undefined, { timeout: 20000 }));
    info(`get-env (oversized answer): ${errStr(s)} after ${s.ms} ms`);
    if (s.ok) {
      const len = textOf(s.v).length;
      throw new Fail(`get-env answered despite --max-message ${MAXMSG}: ${len} chars of text (isError=${s.v.isError})`);
    }
    check(s.ms < 5000, `the oversized answer's error came after ${s.ms} ms (--timeout 15s): ${errStr(s)}`);
    check(s.e?.code === -32603, `oversized answer: want -32603, got ${errStr(s)}`);
    await stillServes(c, 'oversized answer');
    // oversized host request
    const s2 = await settle(c.client.callTool({ name: 'echo', arguments: { message: bigText('req') } }, undefined, { timeout: 20000 }));
    info(`echo (oversized request): ${errStr(s2)} after ${s2.ms} ms`);
    check(!s2.ok, 'oversized request answered with a result');
    check(s2.ms < 5000, `oversized request's error came after ${s2.ms} ms: ${errStr(s2)}`);
    check(s2.e?.code === -32600, `oversized request: want -32600, got ${errStr(s2)}`);
    const nullId = c.wire.find((e) => e.dir === 'in' && 'error' in e.msg && e.msg.id === null, since);
    check(!nullId, `an error with id null reached the host: ${short(nullId?.msg)}`);
    await stillServes(c, 'oversized request');
    return `oversized answer -> ${s.e.code} in ${s.ms} ms, oversized request -> ${s2.e.code} in ${s2.ms} ms, still serving`;
  },

  // The host's (TS SDK client's) too-long answer to sampling / elicitation
  // ends the backend's request (-32603): the tool call ends promptly.
  async oversize_upcall() {
    check(!direct, 'bridge only');
    cfg.bridgeFlags = [...cfg.bridgeFlags, '--max-message', MAXMSG, '--timeout', '15s'];
    const c = await connect();
    await ensureTools(c, ['trigger-sampling-request', 'trigger-elicitation-request']);
    samplingOverride = async () => ({ model: 'interop-model', role: 'assistant', content: { type: 'text', text: bigText('sampled') }, stopReason: 'endTurn' });
    const s = await settle(c.client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'big', maxTokens: 10 } }, undefined, { timeout: 20000 }));
    info(`sampling with an oversized answer: ${s.ok ? `isError=${s.v.isError} ${short(textOf(s.v), 200)}` : errStr(s)} after ${s.ms} ms`);
    check(s.ms < 5000, `the tool call waited ${s.ms} ms after an oversized sampling answer (--timeout 15s): ${errStr(s)}`);
    check(!s.ok || s.v.isError, `sampling tool succeeded with an oversized answer?: ${short(textOf(s.v), 200)}`);
    samplingOverride = null;
    await stillServes(c, 'oversized sampling answer');
    elicitOverride = async () => ({ action: 'accept', content: { name: bigText('elicited'), check: true } });
    const s2 = await settle(c.client.callTool({ name: 'trigger-elicitation-request', arguments: {} }, undefined, { timeout: 20000 }));
    info(`elicitation with an oversized answer: ${s2.ok ? `isError=${s2.v.isError} ${short(textOf(s2.v), 200)}` : errStr(s2)} after ${s2.ms} ms`);
    check(s2.ms < 5000, `the tool call waited ${s2.ms} ms after an oversized elicitation answer: ${errStr(s2)}`);
    check(!s2.ok || s2.v.isError, `elicitation tool succeeded with an oversized answer?: ${short(textOf(s2.v), 200)}`);
    elicitOverride = null;
    // a normal sampling afterwards still works
    const r3 = await call(c.client, 'trigger-sampling-request', { prompt: 'after', maxTokens: 10 }, { timeout: 10000 });
    check(textOf(r3).includes('INTEROP-SAMPLED['), `sampling after: ${short(textOf(r3))}`);
    return `sampling ${s.ms} ms, elicitation ${s2.ms} ms, then normal sampling ok`;
  },

  // --timeout 1s is held while the backend waits on the host (a 2.5 s sampling
  // / elicitation answer).
  async held_timeout() {
    check(!direct, 'bridge only');
    cfg.bridgeFlags = [...cfg.bridgeFlags, '--timeout', '1s'];
    const c = await connect();
    await ensureTools(c, ['trigger-sampling-request', 'trigger-elicitation-request']);
    samplingOverride = async (req) => {
      await sleep(2500);
      return { model: 'interop-model', role: 'assistant', content: { type: 'text', text: 'SLOW-SAMPLED' }, stopReason: 'endTurn' };
    };
    const s = await settle(c.client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'slow', maxTokens: 10 } }, undefined, { timeout: 20000 }));
    check(s.ok && !s.v.isError && textOf(s.v).includes('SLOW-SAMPLED'), `slow sampling (2.5 s, --timeout 1s): ${errStr(s)}`);
    elicitOverride = async () => {
      await sleep(2500);
      return { action: 'accept', content: { name: 'Slow Tester', check: true } };
    };
    const s2 = await settle(c.client.callTool({ name: 'trigger-elicitation-request', arguments: {} }, undefined, { timeout: 20000 }));
    check(s2.ok && !s2.v.isError && textOf(s2.v).includes('Slow Tester'), `slow elicitation (2.5 s, --timeout 1s): ${errStr(s2)}`);
    samplingOverride = elicitOverride = null;
    return `sampling held ${s.ms} ms, elicitation held ${s2.ms} ms`;
  },

  // With one backend the initialize result passes through: compare with what
  // server-everything sends the same TS client directly.
  async init_passthrough() {
    check(!direct, 'bridge only');
    const c = await connect();
    const viaBridge = c.wire.find((e) => e.dir === 'in' && e.msg.result?.protocolVersion !== undefined).msg.result;
    // direct
    const wire = new Wire(`direct ${cfg.transport}`);
    let inner;
    if (cfg.transport === 'stdio') inner = new StdioClientTransport({ command: cfg.node, args: [cfg.serverJs, 'stdio'], env: { ...process.env }, stderr: 'pipe' });
    else if (cfg.transport === 'streamableHttp') inner = new StreamableHTTPClientTransport(new URL(cfg.url));
    else inner = new SSEClientTransport(new URL(cfg.url));
    const t = new TapTransport(inner, wire);
    const dc = makeClient();
    await withTimeout(dc.connect(t, { timeout: 15000 }), 20000, 'direct initialize');
    conns.push({ client: dc, transport: t, wire });
    const directRes = wire.find((e) => e.dir === 'in' && e.msg.result?.protocolVersion !== undefined).msg.result;
    const diffs = [];
    const keys = new Set([...Object.keys(viaBridge), ...Object.keys(directRes)]);
    for (const k of keys) {
      const a = JSON.stringify(viaBridge[k]);
      const b = JSON.stringify(directRes[k]);
      if (a !== b) diffs.push(`${k}: bridge ${short(viaBridge[k], 300)} vs direct ${short(directRes[k], 300)}`);
    }
    info(`keys bridge=${Object.keys(viaBridge).join(',')} direct=${Object.keys(directRes).join(',')}`);
    check(diffs.length === 0, `initialize result differs:\n  ${diffs.join('\n  ')}`);
    return `initialize result equal (${[...keys].join(', ')})`;
  },

  // A streamable answer stream the server closes after its first event is
  // resumed with GET + Last-Event-ID in its own session.
  async resume() {
    check(cfg.transport === 'streamableHttp', 'streamable only');
    const log = { posts: [], gets: [], cut: 0 };
    const target = new URL(cfg.url);
    let cutNext = false;
    const server = http.createServer((req, res) => {
      const body = [];
      req.on('data', (c) => body.push(c));
      req.on('end', () => {
        const b = Buffer.concat(body).toString('utf8');
        let msg;
        try { msg = b ? JSON.parse(b) : undefined; } catch {}
        const rec = { method: req.method, sid: req.headers['mcp-session-id'], lei: req.headers['last-event-id'], msg };
        if (req.method === 'POST') log.posts.push(rec);
        if (req.method === 'GET') log.gets.push(rec);
        const cutThis = req.method === 'POST' && msg?.method === 'tools/call' && msg?.params?.name === 'trigger-long-running-operation';
        const preq = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } }, (pres) => {
          res.writeHead(pres.statusCode, pres.headers);
          res.flushHeaders();
          let pend = '';
          let cut = false;
          pres.setEncoding('utf8');
          pres.on('data', (ch) => {
            if (cut) return;
            if (!cutThis) return void res.write(ch);
            pend += ch;
            let i;
            while ((i = pend.indexOf('\n\n')) !== -1) {
              const ev = pend.slice(0, i + 2);
              pend = pend.slice(i + 2);
              res.write(ev);
              if (/^id:/m.test(ev) && /notifications\/progress/.test(ev)) {
                cut = true;
                log.cut++;
                res.end(); // the "server" closes the answer stream
                pres.destroy();
                return;
              }
            }
          });
          pres.on('end', () => { if (!cut) res.end(); });
          pres.on('error', () => res.destroy());
        });
        preq.on('error', (e) => { if (!res.headersSent) res.writeHead(502); res.end(String(e)); });
        preq.end(b);
      });
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => { server.closeAllConnections?.(); server.close(); });
    const url = `http://127.0.0.1:${server.address().port}${target.pathname}`;
    cfg.bridgeFlags = [...cfg.bridgeFlags, '--timeout', '20s'];
    const c = await connect({ url });
    const since = c.wire.mark();
    let prog = 0;
    const s = await settle(c.client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 2, steps: 4 } }, undefined, { timeout: 20000, onprogress: () => prog++ }));
    const post = log.posts.find((p) => p.msg?.params?.name === 'trigger-long-running-operation');
    const resumes = log.gets.filter((g) => g.lei);
    info(`cuts=${log.cut} GETs=${log.gets.length} with Last-Event-ID=${resumes.length} sids=${short(resumes.map((g) => g.sid))} post sid=${post?.sid}; progress cb=${prog}; ${errStr(s)} after ${s.ms} ms`);
    check(log.cut === 1, `the proxy cut ${log.cut} streams`);
    check(s.ok && !s.v.isError && textOf(s.v).includes('Long running operation completed'), `resumed call: ${errStr(s)}`);
    check(resumes.length >= 1, 'no GET with Last-Event-ID');
    check(resumes.every((g) => g.sid === post.sid), `resumed in another session: ${short(resumes.map((g) => g.sid))} vs ${post.sid}`);
    const dup = c.wire.filter((e) => e.dir === 'in' && e.msg.id === outCall(c.wire, 'trigger-long-running-operation', since).msg.id && ('result' in e.msg || 'error' in e.msg), since);
    check(dup.length === 1, `${dup.length} answers for the call`);
    const ps = progressFor(c.wire, outCall(c.wire, 'trigger-long-running-operation', since).msg.params._meta.progressToken, since);
    const vals = ps.map((e) => e.msg.params.progress);
    info(`progress values on the wire: ${vals.join(',')}`);
    check(new Set(vals).size === vals.length, `duplicate progress after resumption: ${vals.join(',')}`);
    check(vals.join(',') === '1,2,3,4', `progress on the wire ${vals.join(',')}, want 1,2,3,4 (each step once, none lost across the resumption)`);
    await stillServes(c, 'resume');
    return `resumed ${resumes.length}x in session ${post.sid}; ${prog} progress`;
  },


  // tasks (review): one backend (raw mode), --timeout 1s. A task-augmented
  // call through the SDK's own stream, a tasks/result that blocks longer
  // than --timeout, an ambiguous query whose elicitation comes through
  // tasks/result (input_required), tasks/list and tasks/cancel.
  async tasks() {
    cfg.bridgeFlags = [...cfg.bridgeFlags, '--timeout', '1s'];
    const c = await connect();
    await ensureTools(c, ['simulate-research-query']);
    check(direct || c.client.getServerCapabilities()?.tasks?.requests?.tools?.call, `capabilities lack tasks: ${short(c.client.getServerCapabilities())}`);
    const name = 'simulate-research-query';
    // 1. the SDK's callToolStream (tools/call + tasks/get polls + tasks/result), with a progress token
    const t1 = `streamed ${rand()}`;
    const seen = [];
    let prog1 = 0;
    for await (const m of c.client.experimental.tasks.callToolStream({ name, arguments: { topic: t1 } }, TCallToolResultSchema, { task: { ttl: 60000 }, timeout: 20000, onprogress: () => prog1++ })) {
      seen.push(m.type);
      if (m.type === 'error') throw new Fail(`callToolStream error: ${m.error?.message}`);
      if (m.type === 'result') check(textOf(m.result).includes(t1), `stream result lacks topic: ${short(textOf(m.result))}`);
    }
    check(seen[0] === 'taskCreated' && seen[seen.length - 1] === 'result', `stream messages: ${seen.join(',')}`);
    info(`callToolStream: ${seen.join(',')}`);
    const toolsCall = outCall(c.wire, name);
    check(toolsCall?.msg.params?._meta?.progressToken !== undefined, `the task call carried no progress token: ${short(toolsCall?.msg)}`);
    // 2. tasks/result at once: it blocks ~4 s, longer than --timeout 1s
    const t2 = `blocking ${rand()}`;
    const cr = await c.client.request({ method: 'tools/call', params: { name, arguments: { topic: t2 }, task: { ttl: 60000 } } }, TCreateTaskResultSchema, { timeout: 10000 });
    const t0 = Date.now();
    const r2 = await c.client.request({ method: 'tasks/result', params: { taskId: cr.task.taskId } }, TCallToolResultSchema, { timeout: 20000 });
    check(textOf(r2).includes(t2), `tasks/result: ${short(textOf(r2))}`);
    info(`tasks/result blocked ${Date.now() - t0} ms`);
    // 3. ambiguous: input_required, elicitation delivered through tasks/result
    const t3 = `python ${rand()}`;
    const before = calls.elicit.length;
    const seen3 = [];
    for await (const m of c.client.experimental.tasks.callToolStream({ name, arguments: { topic: t3, ambiguous: true } }, TCallToolResultSchema, { task: { ttl: 60000 }, timeout: 20000 })) {
      seen3.push(m.type + (m.task ? ':' + m.task.status : ''));
      if (m.type === 'error') throw new Fail(`ambiguous stream error: ${m.error?.message} (${seen3.join(',')})`);
      if (m.type === 'result') {
        check(textOf(m.result).includes(t3), `ambiguous result: ${short(textOf(m.result))}`);
        check(!textOf(m.result).includes('unavailable'), `elicitation did not reach the client: ${short(textOf(m.result), 600)}`);
      }
    }
    check(calls.elicit.length === before + 1, `elicitations: ${calls.elicit.length - before}`);
    info(`ambiguous: ${seen3.join(',')}`);
    // 4. tasks/list and tasks/cancel
    const cr4 = await c.client.request({ method: 'tools/call', params: { name, arguments: { topic: `cancel ${rand()}` }, task: { ttl: 60000 } } }, TCreateTaskResultSchema, { timeout: 10000 });
    const listed = await c.client.request({ method: 'tasks/list', params: {} }, TListTasksResultSchema, { timeout: 10000 });
    check(listed.tasks.some((x) => x.taskId === cr4.task.taskId), `tasks/list lacks ${cr4.task.taskId}`);
    const cancelled = await c.client.experimental.tasks.cancelTask(cr4.task.taskId, { timeout: 10000 });
    check(cancelled.status === 'cancelled', `tasks/cancel: ${short(cancelled)}`);
    // 5. the bridge still answers
    const r5 = await call(c.client, 'echo', { message: 'after tasks' });
    check(textOf(r5) === 'Echo: after tasks', `echo after: ${textOf(r5)}`);
    return `stream ${seen.length} msgs, blocking tasks/result ok, ambiguous elicitation ok, list+cancel ok`;
  },
  async basic() {
    const c = await connect();
    await ensureTools(c, ['echo', 'get-sum', ...CAP_TOOLS]);
    const msg = `hello interop ✓ "quoted" \\ tab\t newline\n ${rand()}`;
    const r = await call(c.client, 'echo', { message: msg });
    check(textOf(r) === `Echo: ${msg}`, `echo answered ${short(textOf(r))}, want ${short(`Echo: ${msg}`)}`);
    const s = await call(c.client, 'get-sum', { a: 19, b: 23 });
    check(textOf(s).includes('is 42'), `get-sum answered ${short(textOf(s))}`);
    return 'echo and get-sum ok';
  },

  async sampling() {
    const c = await connect();
    await ensureTools(c, ['trigger-sampling-request']);
    const prompt = `interop-prompt-${rand()}`;
    const r = await call(c.client, 'trigger-sampling-request', { prompt, maxTokens: 50 });
    check(calls.sampling.length === 1, `sampling handler called ${calls.sampling.length}x, want 1`);
    check(JSON.stringify(calls.sampling[0]).includes(prompt), `sampling request lacks the prompt: ${short(calls.sampling[0])}`);
    const t = textOf(r);
    check(t.includes('INTEROP-SAMPLED[') && t.includes(prompt), `tool result lacks the sampled answer: ${short(t)}`);
    return 'sampling answer reached the tool result';
  },

  async elicitation() {
    const c = await connect();
    await ensureTools(c, ['trigger-elicitation-request']);
    const r = await call(c.client, 'trigger-elicitation-request', {});
    check(calls.elicit.length === 1, `elicitation handler called ${calls.elicit.length}x, want 1`);
    const t = textOf(r);
    check(t.includes('- Name: Interop Tester') && t.includes('"action": "accept"'), `tool result does not reflect the accepted content: ${short(t, 600)}`);
    return 'elicitation accepted content reached the tool';
  },

  async roots() {
    const c = await connect();
    await ensureTools(c, ['get-roots-list']);
    const r = await call(c.client, 'get-roots-list', {});
    const t = textOf(r);
    check(t.includes('file:///tmp/interop'), `get-roots-list does not show file:///tmp/interop: ${short(t, 400)}`);
    check(calls.roots >= 1, 'roots/list handler was never called');
    return `roots/list answered ${calls.roots}x`;
  },

  async progress() {
    const c = await connect();
    const since = c.wire.mark();
    let cb = 0;
    const r = await call(c.client, 'trigger-long-running-operation', { duration: 1.5, steps: 5 }, { onprogress: () => cb++ });
    check(textOf(r).includes('Long running operation completed'), `unexpected result ${short(textOf(r))}`);
    const req = outCall(c.wire, 'trigger-long-running-operation', since);
    const token = req.msg.params?._meta?.progressToken;
    check(token !== undefined, 'client request had no progressToken');
    await sleep(100);
    const ps = progressFor(c.wire, token, since);
    check(ps.length >= 4, `${ps.length} notifications/progress with token ${JSON.stringify(token)} on the wire, want >= 4`);
    const vals = ps.map((e) => e.msg.params.progress);
    check(vals.every((v, i) => i === 0 || v > vals[i - 1]), `progress not increasing: ${vals}`);
    check(ps.every((e) => e.msg.params.total === 5), `progress total not 5: ${short(ps.map((e) => e.msg.params))}`);
    const stray = c.wire.filter((e) => isNote('notifications/progress')(e) && e.msg.params?.progressToken !== token, since);
    check(stray.length === 0, `progress with unknown token: ${short(stray.map((e) => e.msg))}`);
    const resp = c.wire.find((e) => e.dir === 'in' && e.msg.id === req.msg.id && 'result' in e.msg, since);
    info(`progress arrival ms after the call: ${ps.map((e) => e.t - req.t).join(',')}; result at ${resp.t - req.t}`);
    check(resp.t - ps[0].t >= 600, `progress is not live: first progress only ${resp.t - ps[0].t} ms before the result (steps are 300 ms apart)`);
    const late = ps.filter((e) => e.t > resp.t + 0);
    check(late.length === 0, 'progress arrived after the final result');
    // Host-chosen tokens pass through with their type: 0 (an ordinary value,
    // never "absent") and a UUID-like string, concurrently.
    const since2 = c.wire.mark();
    const toks = [0, `tok-${rand()}-${rand()}`];
    await Promise.all(
      toks.map((tok) =>
        c.client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 0.9, steps: 3 }, _meta: { progressToken: tok } }, undefined, {
          timeout: 30000,
        }),
      ),
    );
    const got = toks.map((tok) => progressFor(c.wire, tok, since2).length);
    check(got.every((n) => n >= 2), `progress for host tokens ${JSON.stringify(toks)}: got ${got} notifications with the exact token (want >= 2 each); seen: ${short(c.wire.filter(isNote('notifications/progress'), since2).map((e) => e.msg.params.progressToken))}`);
    return `${ps.length} progress notifications on the wire (${cb} via onprogress), values ${vals.join(',')}; host tokens 0 and string: ${got.join('+')}`;
  },

  async logging() {
    const c = await connect();
    await c.client.setLoggingLevel('debug', { timeout: 10000 });
    const since = c.wire.mark();
    await call(c.client, 'toggle-simulated-logging', {});
    const isSim = (e) => isNote('notifications/message')(e) && /level[- ]message/i.test(String(e.msg.params?.data));
    const e = await c.wire.waitFor(isSim, 8000, 'a simulated notifications/message', since);
    await call(c.client, 'toggle-simulated-logging', {}); // stop it again
    return `notifications/message level=${e.msg.params.level} data=${short(e.msg.params.data, 80)}`;
  },

  async subscriptions() {
    const c = await connect();
    const res = await listAllResources(c.client);
    check(res.length > 0, 'resources/list is empty');
    const uri = (res.find((r) => r.uri.startsWith('demo://resource/static/')) || res[0]).uri;
    await c.client.subscribeResource({ uri }, { timeout: 10000 });
    const since = c.wire.mark();
    await call(c.client, 'toggle-subscriber-updates', {});
    const isUpd = (e) => isNote('notifications/resources/updated')(e) && e.msg.params?.uri === uri;
    await c.wire.waitFor(isUpd, 8000, `notifications/resources/updated for ${uri}`, since);
    await call(c.client, 'toggle-subscriber-updates', {});
    await c.client.unsubscribeResource({ uri }, { timeout: 10000 });
    return `resources/updated for ${uri}`;
  },

  async list_changed() {
    const c = await connect();
    const name = `interop-${rand()}.txt`;
    const data = `data:text/plain;base64,${Buffer.from(`hello from mcpbridge interop ${name}\n`).toString('base64')}`;
    const since = c.wire.mark();
    const r = await call(c.client, 'gzip-file-as-resource', { name, data, outputType: 'resourceLink' });
    const uri = `demo://resource/session/${name}`;
    check(JSON.stringify(r.content).includes(uri), `gzip-file-as-resource result lacks ${uri}: ${short(r.content)}`);
    const tCall = Date.now();
    const lc = await c.wire.waitFor(isNote('notifications/resources/list_changed'), 5000, 'notifications/resources/list_changed', since);
    info(`resources/list_changed arrived ${lc.t - tCall} ms after the tool result`);
    const res = await listAllResources(c.client);
    check(res.some((x) => x.uri === uri), `resources/list lacks ${uri}`);
    const rr = await c.client.readResource({ uri }, { timeout: 10000 });
    check(rr.contents?.[0]?.blob, `resources/read ${uri} has no blob: ${short(rr)}`);
    return `list_changed + new resource ${uri} listed and read`;
  },

  async cancellation() {
    // Backend-side proof: a recorder between the bridge and server-everything
    // (spy.mjs wrapping the stdio server, or a recording HTTP proxy) must see
    // notifications/cancelled for the backend's own id of the tools/call, and
    // the backend must never answer that call (the SDK server suppresses the
    // response of an aborted handler). Progress after the cancel is only
    // reported: server-everything's long-running tool ignores the abort
    // signal and keeps emitting progress.
    const blog = new BackendLog();
    let opts = {};
    if (cfg.transport === 'stdio') opts.stdioArgv = spyWrap(blog, backendArgv());
    else opts.url = await startRecordingProxy(cfg.url, blog);
    const c = await connect(opts);
    const since = c.wire.mark();
    const ac = new AbortController();
    const duration = 4;
    const tStart = Date.now();
    const p = c.client.callTool({ name: 'trigger-long-running-operation', arguments: { duration, steps: 4 } }, undefined, {
      signal: ac.signal,
      timeout: 30000,
      onprogress: () => {},
    });
    const settled = p.then(
      (v) => ({ ok: true, v, t: Date.now() }),
      (e) => ({ ok: false, e, t: Date.now() }),
    );
    await sleep(1300);
    const tAbort = Date.now();
    ac.abort('interop cancel');
    const s = await withTimeout(settled, 5000, 'callTool to settle after abort');
    check(!s.ok, `call resolved despite abort: ${short(s.v)}`);
    check(s.t - tAbort < 1000, `abort error took ${s.t - tAbort} ms`);
    const req = outCall(c.wire, 'trigger-long-running-operation', since);
    const cancel = c.wire.find((e) => e.dir === 'out' && e.msg.method === 'notifications/cancelled', since);
    check(cancel && cancel.msg.params.requestId === req.msg.id, `client sent no notifications/cancelled for id ${req.msg.id}`);
    // at the backend
    const bcall = await blog.waitFor(
      (e) => e.dir === 'to-backend' && e.msg.method === 'tools/call' && e.msg.params?.name === 'trigger-long-running-operation',
      3000,
      'the tools/call',
    );
    const bid = bcall.msg.id;
    check(bid !== 0, 'the bridge gave the backend request id 0; TS SDK servers ignore notifications/cancelled for id 0');
    const bcancel = await blog.waitFor(
      (e) => e.dir === 'to-backend' && e.msg.method === 'notifications/cancelled' && e.msg.params?.requestId === bid,
      3000,
      `notifications/cancelled with requestId ${JSON.stringify(bid)} (the backend's id of the call)`,
    );
    info(`backend got tools/call id=${JSON.stringify(bid)} and notifications/cancelled ${bcancel.t - tAbort} ms after the abort`);
    // wait past the natural end of the operation: no answer may come
    const pAfter = () => c.wire.filter((e) => isNote('notifications/progress')(e) && e.t > tAbort + 50, since).length;
    await sleep(Math.max(0, tAbort + 2000 - Date.now()));
    const progress2s = pAfter();
    await sleep(Math.max(0, tStart + duration * 1000 + 800 - Date.now()));
    blog.refresh();
    const bresp = blog.entries.find((e) => e.dir === 'from-backend' && e.msg.id === bid && ('result' in e.msg || 'error' in e.msg));
    check(!bresp, `backend still answered the cancelled call: ${short(bresp?.msg)}`);
    const fresp = c.wire.find((e) => e.dir === 'in' && e.msg.id === req.msg.id && ('result' in e.msg || 'error' in e.msg), since);
    check(!fresp, `a response for the cancelled id ${req.msg.id} reached the client: ${short(fresp?.msg)}`);
    const bprog = blog.entries.filter((e) => e.dir === 'from-backend' && e.msg.method === 'notifications/progress' && e.t > tAbort + 50).length;
    return `abort error after ${s.t - tAbort} ms; backend saw the cancel and never answered; progress after cancel: backend sent ${bprog}, client got ${progress2s} in 2 s / ${pAfter()} total`;
  },

  async big() {
    const c = await connect();
    const unit = 'mcpbridge interop é€😀 "q" \\ / \t 0123456789 ';
    let msg = unit.repeat(Math.ceil((3 * 1024 * 1024) / Buffer.byteLength(unit)));
    while (Buffer.byteLength(msg) > 3 * 1024 * 1024) msg = msg.slice(0, -1);
    msg = msg.replace(/[\uD800-\uDBFF]$/, 'x');
    const t0 = Date.now();
    const r = await call(c.client, 'echo', { message: msg }, { timeout: 40000 });
    const t = textOf(r);
    check(t === `Echo: ${msg}`, `3 MiB echo mismatch: got ${t.length} chars, want ${msg.length + 6}`);
    return `echo of ${Buffer.byteLength(msg)} bytes round-tripped in ${Date.now() - t0} ms`;
  },

  async concurrent() {
    const c = await connect();
    const N = 50;
    const payloads = Array.from({ length: N }, (_, i) => `c${i}-${rand()}-${'z'.repeat(i * 37)}`);
    const rs = await Promise.all(payloads.map((m) => call(c.client, 'echo', { message: m })));
    rs.forEach((r, i) => check(textOf(r) === `Echo: ${payloads[i]}`, `call ${i}: got ${short(textOf(r))}`));
    const ids = new Set(c.wire.filter((e) => e.dir === 'in' && 'result' in e.msg).map((e) => e.msg.id));
    return `${N} concurrent echoes matched (${ids.size} distinct response ids)`;
  },

  async multi() {
    check(!direct, 'multi needs the bridge');
    check(cfg.multiUrl, 'config.multiUrl is required for multi');
    const spec = `a=${backendArgv().map(shq).join(' ')}`;
    const args = [...cfg.bridgeFlags, '--stdio', spec, '--env', 'a:MARKER=alpha', '--http', `b=${cfg.multiUrl}`];
    const c = await connect({ bridgeArgv: args });
    const need = ['echo', 'get-env', 'trigger-sampling-request', 'trigger-long-running-operation'];
    await ensureTools(c, [...need.map((n) => `a_${n}`), ...need.map((n) => `b_${n}`)], 10000);
    for (const b of ['a', 'b']) {
      const m = `via-${b}-${rand()}`;
      const r = await call(c.client, `${b}_echo`, { message: m });
      check(textOf(r) === `Echo: ${m}`, `${b}_echo answered ${short(textOf(r))}`);
    }
    const env = {};
    for (const b of ['a', 'b']) {
      const r = await call(c.client, `${b}_get-env`, {});
      env[b] = JSON.parse(textOf(r)).MARKER;
    }
    check(env.a === 'alpha' && env.b === 'beta', `routing: a_get-env MARKER=${env.a} (want alpha), b_get-env MARKER=${env.b} (want beta)`);
    // concurrent sampling: both held until both arrived
    samplingBarrier = { n: 2, waiting: [] };
    const pa = `from-a-${rand()}`;
    const pb = `from-b-${rand()}`;
    const sinceS = c.wire.mark();
    const [ra, rb] = await Promise.all([
      call(c.client, 'a_trigger-sampling-request', { prompt: pa }),
      call(c.client, 'b_trigger-sampling-request', { prompt: pb }),
    ]);
    const barrier = samplingBarrier;
    samplingBarrier = null;
    check(!barrier.timedOut, `the two sampling requests were never in flight at once (${barrier.waiting.length} arrived within 5 s)`);
    check(textOf(ra).includes(`INTEROP-SAMPLED[`) && textOf(ra).includes(pa) && !textOf(ra).includes(pb), `a sampling result wrong: ${short(textOf(ra))}`);
    check(textOf(rb).includes(`INTEROP-SAMPLED[`) && textOf(rb).includes(pb) && !textOf(rb).includes(pa), `b sampling result wrong: ${short(textOf(rb))}`);
    const sreqs = c.wire.filter((e) => e.dir === 'in' && e.msg.method === 'sampling/createMessage', sinceS);
    check(sreqs.length === 2 && sreqs[0].msg.id !== sreqs[1].msg.id, `want 2 sampling requests with distinct ids, got ${short(sreqs.map((e) => e.msg.id))}`);
    // concurrent progress on both, different step counts so a crossing shows in `total`
    const sinceP = c.wire.mark();
    const [xa, xb] = await Promise.all([
      call(c.client, 'a_trigger-long-running-operation', { duration: 1.5, steps: 5 }, { onprogress: () => {} }),
      call(c.client, 'b_trigger-long-running-operation', { duration: 1.6, steps: 4 }, { onprogress: () => {} }),
    ]);
    check(textOf(xa).includes('Steps: 5') && textOf(xb).includes('Steps: 4'), `long-running results crossed: a=${short(textOf(xa))} b=${short(textOf(xb))}`);
    const ta = outCall(c.wire, 'a_trigger-long-running-operation', sinceP).msg.params._meta.progressToken;
    const tb = outCall(c.wire, 'b_trigger-long-running-operation', sinceP).msg.params._meta.progressToken;
    const pa5 = progressFor(c.wire, ta, sinceP);
    const pb4 = progressFor(c.wire, tb, sinceP);
    const all = c.wire.filter(isNote('notifications/progress'), sinceP);
    check(all.length === pa5.length + pb4.length, `progress with foreign tokens: ${short(all.map((e) => e.msg.params))}`);
    check(pa5.length >= 4 && pa5.every((e) => e.msg.params.total === 5), `a progress wrong: ${short(pa5.map((e) => e.msg.params))}`);
    check(pb4.length >= 3 && pb4.every((e) => e.msg.params.total === 4), `b progress wrong: ${short(pb4.map((e) => e.msg.params))}`);

    // Resources created at run time on each backend (issue #4):
    // gzip-file-as-resource registers demo://resource/session/NAME in the
    // calling session. Distinct names are listed and read from their owner;
    // a URI both backends serve is answered by the first declared (a).
    const { gunzipSync } = await import('node:zlib');
    const gzipOn = async (b, name, text) => {
      const data = `data:text/plain;base64,${Buffer.from(text).toString('base64')}`;
      const r = await call(c.client, `${b}_gzip-file-as-resource`, { name, data, outputType: 'resourceLink' });
      const uri = `demo://resource/session/${name}`;
      check(JSON.stringify(r.content).includes(uri), `${b}_gzip-file-as-resource result lacks ${uri}: ${short(r.content)}`);
      return uri;
    };
    const readText = async (uri) => {
      const rr = await c.client.readResource({ uri }, { timeout: 10000 });
      const blob = rr.contents?.[0]?.blob;
      check(blob, `resources/read ${uri} has no blob: ${short(rr)}`);
      return gunzipSync(Buffer.from(blob, 'base64')).toString('utf8');
    };
    // A backend may announce its new resource (resources/list_changed)
    // after the tool result, b's on its own SSE stream: list again at each
    // list_changed until every uri is there (bounded).
    const ensureResources = async (uris, ms = 8000) => {
      const deadline = Date.now() + ms;
      for (let round = 0; ; round++) {
        const since = c.wire.mark();
        const res = await listAllResources(c.client);
        const missing = uris.filter((u) => !res.some((x) => x.uri === u));
        if (missing.length === 0) {
          if (round > 0) info(`resources listed after ${round} more resources/list_changed`);
          return res;
        }
        const left = deadline - Date.now();
        check(left > 0, `resources/list lacks ${missing.join(', ')} (has ${res.length}: ${short(res.map((x) => x.uri))})`);
        await c.wire.waitFor(isNote('notifications/resources/list_changed'), left, 'notifications/resources/list_changed', since).catch(() => {});
      }
    };
    const own = { a: `alpha-${rand()}`, b: `beta-${rand()}` };
    const uriOf = {};
    for (const b of ['a', 'b']) uriOf[b] = await gzipOn(b, `multi-${b}-${rand()}.txt`, `content made on ${b}: ${own[b]}`);
    await ensureResources([uriOf.a, uriOf.b]);
    for (const b of ['a', 'b']) {
      const got = await readText(uriOf[b]);
      check(got === `content made on ${b}: ${own[b]}`, `resources/read ${uriOf[b]} (made on ${b}) answered ${short(got)}`);
    }
    // The same name on both: one URI, different content.
    const sharedName = `multi-shared-${rand()}.txt`;
    const sharedText = { a: `shared made on a: ${rand()}`, b: `shared made on b: ${rand()}` };
    const uriS = await gzipOn('a', sharedName, sharedText.a);
    check((await gzipOn('b', sharedName, sharedText.b)) === uriS, 'the shared name gave two URIs');
    const first = await readText(uriS); // as a host following the resource link
    check(first === sharedText.a, `resources/read ${uriS} (served by a and b) answered ${short(first)}; want a's content (first declared)`);
    const res = await ensureResources([uriS]);
    const listedS = res.filter((x) => x.uri === uriS).length;
    const again = await readText(uriS);
    check(again === sharedText.a, `resources/read ${uriS} after resources/list answered ${short(again)}; want a's content (first declared)`);
    info(`resources: ${uriOf.a} from a, ${uriOf.b} from b; ${uriS} (listed ${listedS}x) from a`);

    // Tasks (2025-11-25) on both backends at once: the merged capabilities
    // offer them, and each task's tasks/get and tasks/result reach the
    // backend that made it (the bridge remembers who made each task id).
    const { CreateTaskResultSchema, GetTaskResultSchema, ListTasksResultSchema, CallToolResultSchema } = await import('@modelcontextprotocol/sdk/types.js');
    check(c.client.getServerCapabilities()?.tasks?.requests?.tools?.call, `merged capabilities lack tasks: ${short(c.client.getServerCapabilities())}`);
    const topic = { a: `topic-a-${rand()}`, b: `topic-b-${rand()}` };
    const taskOf = {};
    for (const b of ['a', 'b']) {
      const r = await c.client.request({ method: 'tools/call', params: { name: `${b}_simulate-research-query`, arguments: { topic: topic[b] }, task: { ttl: 60000 } } }, CreateTaskResultSchema, { timeout: 10000 });
      check(r.task?.taskId, `${b}_simulate-research-query made no task: ${short(r)}`);
      taskOf[b] = r.task.taskId;
    }
    check(taskOf.a !== taskOf.b, `both backends made task ${taskOf.a}`);
    const listed = await c.client.request({ method: 'tasks/list', params: {} }, ListTasksResultSchema, { timeout: 10000 });
    for (const b of ['a', 'b']) check(listed.tasks.some((x) => x.taskId === taskOf[b]), `tasks/list lacks ${b}'s task ${taskOf[b]}: ${short(listed.tasks.map((x) => x.taskId))}`);
    const polls = { a: 0, b: 0 };
    await Promise.all(['a', 'b'].map(async (b) => {
      for (const deadline = Date.now() + 20000; ; polls[b]++) {
        const g = await c.client.request({ method: 'tasks/get', params: { taskId: taskOf[b] } }, GetTaskResultSchema, { timeout: 10000 });
        check(g.taskId === taskOf[b], `tasks/get ${taskOf[b]} answered task ${g.taskId}`);
        if (g.status === 'completed') return;
        check(g.status === 'working' && Date.now() < deadline, `${b}'s task ${taskOf[b]}: status ${g.status} (${g.statusMessage ?? ''})`);
        await sleep(300);
      }
    }));
    for (const [b, other] of [['a', 'b'], ['b', 'a']]) {
      const r = await c.client.request({ method: 'tasks/result', params: { taskId: taskOf[b] } }, CallToolResultSchema, { timeout: 10000 });
      check(textOf(r).includes(topic[b]) && !textOf(r).includes(topic[other]), `tasks/result of ${b}'s task: ${short(textOf(r))}`);
    }
    info(`tasks: a=${taskOf.a} b=${taskOf.b}, ${polls.a}+${polls.b} tasks/get polls, results from their own backend`);

    return `prefixed tools, MARKER a=${env.a} b=${env.b}, 2 concurrent samplings, progress a=${pa5.length} b=${pb4.length} not crossed, run-time resources routed to their owner, shared URI to a, tasks routed by id`;
  },
};

// ---------------------------------------------------------------- main

async function main() {
  const fn = scenarios[scenario];
  if (!fn) {
    process.stderr.write(`FAIL ${scenario}: unknown scenario (have ${Object.keys(scenarios).join(', ')})\n`);
    process.exit(2);
  }
  const watchdog = setTimeout(async () => {
    process.stderr.write(`FAIL ${scenario}: watchdog: scenario still running after ${cfg.timeoutMs} ms\n`);
    dumpWire();
    await Promise.race([closeAll(), sleep(5000)]);
    process.exit(1);
  }, cfg.timeoutMs);
  const t0 = Date.now();
  let detail;
  try {
    detail = await fn();
    for (const c of conns) {
      check(c.wire.violations.length === 0, `non-JSON-RPC output on stdout: ${c.wire.violations.slice(0, 5).join(' | ')}`);
    }
  } catch (e) {
    clearTimeout(watchdog);
    const why = e instanceof Fail ? e.message : `${e?.name ?? 'Error'}: ${e?.message ?? e}${e?.code !== undefined ? ` (code ${e.code})` : ''}`;
    process.stderr.write(`FAIL ${scenario}: ${why}\n`);
    for (const c of conns) if (c.wire.violations.length) process.stderr.write(`  stdout violations: ${c.wire.violations.slice(0, 5).join(' | ')}\n`);
    if (clientErrors.length) process.stderr.write(`  client errors: ${clientErrors.slice(0, 5).join(' | ')}\n`);
    dumpWire();
    await Promise.race([closeAll(), sleep(10000)]);
    process.exit(1);
  }
  clearTimeout(watchdog);
  await Promise.race([closeAll(), sleep(10000)]);
  if (clientErrors.length) info(`client errors (not fatal): ${clientErrors.slice(0, 3).join(' | ')}`);
  process.stdout.write(`PASS ${scenario} [${direct ? 'direct' : 'bridge'} ${cfg.transport}] in ${Date.now() - t0} ms: ${detail}\n`);
  process.exit(0);
}

// dumpWire prints the last wire messages (shortened) to stderr for bug reports.
function dumpWire() {
  for (const c of conns) {
    process.stderr.write(`  last wire messages (${c.wire.label}):\n`);
    const t0 = c.wire.log[0]?.t ?? 0;
    for (const e of c.wire.log.slice(-25)) process.stderr.write(`    +${e.t - t0}ms ${e.dir === 'out' ? '→' : '←'} ${short(e.msg, 240)}\n`);
  }
}

main();
