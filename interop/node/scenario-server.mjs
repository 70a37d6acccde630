#!/usr/bin/env node
// scenario-server.mjs: a TypeScript-SDK MCP server for the interop
// scenarios of scenario-client.mjs (ts_scenarios_test.go; first written for
// the twenty-fourth review). It records, process-wide,
// what it saw: cancellations of its tool calls (the handler's abort signal),
// the outcome of its own sampling requests, subscriptions, and the HTTP
// requests still open at it (count of answer streams a client left open).
//
//   node scenario-server.mjs MODE        MODE: stdio | http | http-store | http-json | sse
//
// PORT from env for the HTTP modes (binds 127.0.0.1).
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { InMemoryEventStore } from '@modelcontextprotocol/sdk/examples/shared/inMemoryEventStore.js';
import {
  CreateMessageResultSchema,
  SubscribeRequestSchema,
  ElicitResultSchema,
  UrlElicitationRequiredError,
  UnsubscribeRequestSchema,
  McpError,
} from '@modelcontextprotocol/sdk/types.js';

const mode = process.argv[2] || 'stdio';
const log = (s) => process.stderr.write(`[scenario-server ${mode} ${process.pid}] ${s}\n`);

const state = {
  pid: process.pid,
  started: {}, // tag -> ms
  aborted: {}, // tag -> reason
  finished: {}, // tag -> ms
  sample: {}, // tag -> outcome
  subscribes: [], // {uri, ok, session}
  unsubscribes: [],
  sessions: 0,
  errors: [],
  requests: [], // every HTTP request: {method, rpc, lei, t}
};
const open = new Map(); // open HTTP requests: key -> {method, rpc, t}
let openSeq = 0;
let sockets = 0;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let dropAll = () => process.exit(3);

function makeServer(sessionLabel) {
  state.sessions++;
  const s = new McpServer(
    { name: 'scenario-server', version: '0.0.1' },
    { capabilities: { resources: { subscribe: true, listChanged: true }, logging: {} } },
  );
  s.registerTool('echo', { inputSchema: { message: z.string() } }, async ({ message }) => ({ content: [{ type: 'text', text: `Echo: ${message}` }] }));
  // slow runs for ms; honour: ends at the cancellation. Either way the
  // cancellation is recorded (the handler's signal).
  s.registerTool('slow', { inputSchema: { ms: z.number(), tag: z.string(), honour: z.boolean().optional(), closeAfter: z.number().optional() } }, async ({ ms, tag, honour, closeAfter }, extra) => {
    state.started[tag] = Date.now();
    if (closeAfter !== undefined) {
      // 2025-11-25 polling: the server closes the call's answer stream; the
      // client resumes it with GET and Last-Event-ID.
      setTimeout(() => {
        state.closed = (state.closed || 0) + (extra.closeSSEStream ? 1 : 0);
        extra.closeSSEStream?.();
      }, closeAfter);
    }
    let aborted = false;
    const onAbort = () => {
      aborted = true;
      state.aborted[tag] = String(extra.signal.reason ?? 'aborted');
    };
    if (extra.signal.aborted) onAbort();
    else extra.signal.addEventListener('abort', onAbort, { once: true });
    const end = Date.now() + ms;
    while (Date.now() < end) {
      if (aborted && honour) break;
      await sleep(Math.min(50, end - Date.now()));
    }
    state.finished[tag] = Date.now();
    if (aborted && honour) throw new McpError(-32800, `slow ${tag} cancelled`);
    return { content: [{ type: 'text', text: `slow done ${tag}` }] };
  });
  // sample sends sampling/createMessage for its call (on its answer
  // stream), with the call's abort signal when withSignal, and a request
  // timeout of timeoutMs (default 60 s, the SDK's).
  s.registerTool(
    'sample',
    { inputSchema: { tag: z.string(), withSignal: z.boolean().optional(), timeoutMs: z.number().optional() } },
    async ({ tag, withSignal, timeoutMs }, extra) => {
      state.started[tag] = Date.now();
      extra.signal.addEventListener('abort', () => (state.aborted[tag] = String(extra.signal.reason ?? 'aborted')), { once: true });
      const opts = {};
      if (withSignal) opts.signal = extra.signal;
      if (timeoutMs) opts.timeout = timeoutMs;
      try {
        const r = await extra.sendRequest(
          { method: 'sampling/createMessage', params: { messages: [{ role: 'user', content: { type: 'text', text: `scenario ${tag}` } }], maxTokens: 10 } },
          CreateMessageResultSchema,
          opts,
        );
        state.sample[tag] = `ok: ${r.content?.text}`;
        state.finished[tag] = Date.now();
        return { content: [{ type: 'text', text: `sampled: ${r.content?.text}` }] };
      } catch (e) {
        state.sample[tag] = `error ${e?.code}: ${e?.message}`;
        state.finished[tag] = Date.now();
        return { content: [{ type: 'text', text: `sampling failed: ${e?.code} ${e?.message}` }], isError: true };
      }
    },
  );
  // url_elicit asks for a URL-mode elicitation with elicitationId id (on
  // the call's answer stream) and, once answered, says it completed
  // (notifications/elicitation/complete, on the same stream); errorPath:
  // answers -32042 naming it instead.
  s.registerTool('url_elicit', { inputSchema: { id: z.string(), errorPath: z.boolean().optional() } }, async ({ id, errorPath }, extra) => {
    const el = { mode: 'url', url: `https://example.com/scenario/${id}`, message: `open ${id}`, elicitationId: id };
    if (errorPath) throw new UrlElicitationRequiredError([el], 'scenario needs a URL elicitation');
    const r = await extra.sendRequest({ method: 'elicitation/create', params: el }, ElicitResultSchema, {});
    await s.server.createElicitationCompletionNotifier(id, { relatedRequestId: extra.requestId })();
    return { content: [{ type: 'text', text: `url elicitation ${id}: ${r.action}` }] };
  });
  s.registerTool('stats', { inputSchema: {} }, async () => {
    const reqs = [...open.values()].map((o) => ({ method: o.method, rpc: o.rpc, age: Date.now() - o.t }));
    return { content: [{ type: 'text', text: JSON.stringify({ ...state, open: reqs, sockets }) }] };
  });
  // drop ends the session from the server's side 100 ms after it answers:
  // stdio exits (the bridge restarts it), HTTP forgets every session (the
  // next POST gets 404), SSE closes every stream.
  s.registerTool('drop', { inputSchema: {} }, async () => {
    setTimeout(() => dropAll(), 100);
    return { content: [{ type: 'text', text: 'dropping' }] };
  });
  const listed = ['ok://one', 'ok://two', 'refuse://one'];
  if (process.env.SCENARIO_EXTRA_URI) listed.push(process.env.SCENARIO_EXTRA_URI);
  for (const uri of listed) {
    s.registerResource(uri, uri, { mimeType: 'text/plain' }, async () => ({ contents: [{ uri, text: `content of ${uri}` }] }));
  }
  s.server.setRequestHandler(SubscribeRequestSchema, async (req) => {
    const uri = req.params.uri;
    const known = listed.includes(uri) || (process.env.SCENARIO_WILD && uri.startsWith('wild://'));
    const ok = known && !uri.startsWith('refuse://');
    state.subscribes.push({ uri, ok, session: sessionLabel, t: Date.now() });
    if (!known) throw new McpError(-32602, `Resource ${uri} not found`);
    if (!ok) throw new McpError(-32603, `subscriptions to ${uri} are refused`);
    // ok://two takes a moment to answer (a server that sets up a watcher)
    if (uri === 'ok://two') await sleep(200);
    return {};
  });
  s.server.setRequestHandler(UnsubscribeRequestSchema, async (req) => {
    state.unsubscribes.push({ uri: req.params.uri, session: sessionLabel });
    return {};
  });
  s.server.onerror = (e) => {
    state.errors.push(String(e?.message ?? e));
  };
  return s;
}

async function readBody(req) {
  const body = [];
  for await (const c of req) body.push(c);
  const text = Buffer.concat(body).toString('utf8');
  return text ? JSON.parse(text) : undefined;
}

function track(req, res, parsed) {
  const k = ++openSeq;
  const rpc = Array.isArray(parsed) ? parsed.map((m) => m.method ?? 'response').join(',') : parsed ? (parsed.method ? parsed.method + (parsed.params?.name ? `:${parsed.params.name}` : '') : parsed.id !== undefined ? `response:${parsed.id}` : '?') : '';
  open.set(k, { method: req.method, rpc, t: Date.now() });
  if (state.requests.length < 2000) state.requests.push({ method: req.method, rpc, lei: req.headers['last-event-id'] ?? '', t: Date.now() });
  res.on('close', () => open.delete(k));
}

if (mode === 'stdio') {
  const s = makeServer('stdio');
  await s.connect(new StdioServerTransport());
  log('ready');
} else if (mode.startsWith('http')) {
  const transports = new Map();
  dropAll = () => {
    const ts = [...transports.values()];
    transports.clear();
    for (const t of ts) t.close().catch(() => {});
  };
  const srv = http.createServer(async (req, res) => {
    let parsed;
    try {
      parsed = req.method === 'POST' ? await readBody(req) : undefined;
    } catch (e) {
      res.writeHead(400).end(String(e));
      return;
    }
    track(req, res, parsed);
    const sid = req.headers['mcp-session-id'];
    let t = sid ? transports.get(sid) : undefined;
    if (!t) {
      if (sid || req.method !== 'POST') {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null }));
        return;
      }
      const label = `s${state.sessions + 1}`;
      t = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        eventStore: mode === 'http-store' ? new InMemoryEventStore() : undefined,
        enableJsonResponse: mode === 'http-json',
        onsessioninitialized: (id) => transports.set(id, t),
        onsessionclosed: (id) => transports.delete(id),
      });
      await makeServer(label).connect(t);
    }
    await t.handleRequest(req, res, parsed);
  });
  srv.on('connection', (so) => {
    sockets++;
    so.on('close', () => sockets--);
  });
  srv.listen(Number(process.env.PORT), '127.0.0.1', () => log(`listening on ${process.env.PORT}`));
} else if (mode === 'sse') {
  const transports = new Map();
  dropAll = () => {
    const ts = [...transports.values()];
    transports.clear();
    for (const t of ts) t.close().catch(() => {});
  };
  const srv = http.createServer(async (req, res) => {
    const u = new URL(req.url, 'http://x');
    if (req.method === 'GET' && u.pathname === '/sse') {
      track(req, res, undefined);
      const t = new SSEServerTransport('/messages', res);
      transports.set(t.sessionId, t);
      res.on('close', () => transports.delete(t.sessionId));
      await makeServer(`s${state.sessions + 1}`).connect(t);
      return;
    }
    if (req.method === 'POST' && u.pathname === '/messages') {
      let parsed;
      try {
        parsed = await readBody(req);
      } catch (e) {
        res.writeHead(400).end(String(e));
        return;
      }
      track(req, res, parsed);
      const t = transports.get(u.searchParams.get('sessionId'));
      if (!t) {
        res.writeHead(404).end('no session');
        return;
      }
      await t.handlePostMessage(req, res, parsed);
      return;
    }
    res.writeHead(404).end();
  });
  srv.on('connection', (so) => {
    sockets++;
    so.on('close', () => sockets--);
  });
  srv.listen(Number(process.env.PORT), '127.0.0.1', () => log(`listening on ${process.env.PORT}`));
} else {
  log(`unknown mode ${mode}`);
  process.exit(2);
}
