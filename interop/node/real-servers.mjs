// real-servers.mjs: plays a desktop host (the TypeScript SDK's client)
// against mcpbridge in front of popular npm servers (filesystem, memory,
// sequential-thinking, everything), merged. Written by the project's 38th
// review; run by interop/real_servers_test.go.
//   node real-servers.mjs 'JSON'   {label, command, args, env, root, outside,
//     servers: {fs: 'prefix', mem:..., think:..., every:...}, timeoutMs, out}
// A server whose prefix is absent has its own checks skipped (its tools are
// still listed). Prints ok/FAIL lines; exits 1 if any check failed.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import {
  CreateMessageRequestSchema, ElicitRequestSchema, ListRootsRequestSchema,
  LoggingMessageNotificationSchema, ResourceUpdatedNotificationSchema,
  ToolListChangedNotificationSchema, CallToolResultSchema,
} from '@modelcontextprotocol/sdk/types.js';
import fs from 'node:fs';
import { execSync } from 'node:child_process';

const cfg = JSON.parse(process.argv[2]);
const S = cfg.servers;
const results = {};
let fails = 0;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const short = (v, n = 300) => { const s = typeof v === 'string' ? v : JSON.stringify(v); return s && s.length > n ? s.slice(0, n) + '…' : s; };
let checks = 0;
function check(cond, msg, detail) {
  checks++;
  if (cond) console.log(`ok   ${msg}`);
  else { fails++; console.log(`FAIL ${msg}${detail !== undefined ? ' :: ' + short(detail, 600) : ''}`); }
}
const watchdog = setTimeout(() => { console.log('FAIL watchdog: whole run over ' + (cfg.timeoutMs || 90000) + ' ms'); process.exit(3); }, cfg.timeoutMs || 90000);

// ---- raw tap of stdout + request/answer accounting
const violations = [];
const answers = new Map(); // id -> count
const sentIds = [];
const rawIn = [];
const transport = new StdioClientTransport({ command: cfg.command, args: cfg.args, env: { ...process.env, ...(cfg.env || {}) }, stderr: 'pipe' });
let stderrBuf = '';
const origStart = transport.start.bind(transport);
transport.start = async () => {
  const p = origStart();
  const proc = transport._process;
  let buf = '';
  proc.stdout.on('data', (c) => {
    buf += c.toString('utf8');
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i); buf = buf.slice(i + 1);
      let m;
      try { m = JSON.parse(line); } catch { violations.push('not JSON: ' + short(line, 200)); continue; }
      if (m.jsonrpc !== '2.0') violations.push('no jsonrpc 2.0: ' + short(line, 200));
      rawIn.push(m);
      if (m.id !== undefined && m.method === undefined) answers.set(JSON.stringify(m.id), (answers.get(JSON.stringify(m.id)) || 0) + 1);
    }
  });
  transport.stderr?.on('data', (c) => { stderrBuf += c.toString(); });
  return p;
};
const origSend = transport.send.bind(transport);
transport.send = async (msg, opts) => {
  if (msg.id !== undefined && msg.method !== undefined) sentIds.push({ id: JSON.stringify(msg.id), method: msg.method });
  return origSend(msg, opts);
};

const client = new Client({ name: 'review38-host', version: '1.0.0' }, {
  capabilities: { sampling: {}, elicitation: { form: {}, url: {} }, roots: { listChanged: true } },
});
const samplingSeen = [];
client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
  samplingSeen.push(req.params);
  return { model: 'review38-model', role: 'assistant', content: { type: 'text', text: 'sampled: ' + (req.params.messages?.[0]?.content?.text ?? '') }, stopReason: 'endTurn' };
});
const elicitSeen = [];
client.setRequestHandler(ElicitRequestSchema, async (req) => {
  elicitSeen.push(req.params);
  if (req.params.mode === 'url') return { action: 'accept' };
  // fill required fields of the requested schema
  const content = {};
  const props = req.params.requestedSchema?.properties || {};
  for (const [k, v] of Object.entries(props)) {
    if (v.type === 'string') content[k] = v.enum ? v.enum[0] : (v.oneOf ? v.oneOf[0].const : (v.format === 'email' ? 'a@b.co' : v.format === 'uri' ? 'https://x.test' : v.format === 'date' ? '2026-01-01' : v.format === 'date-time' ? '2026-01-01T00:00:00Z' : 'x'));
    else if (v.type === 'number' || v.type === 'integer') content[k] = v.minimum ?? 1;
    else if (v.type === 'boolean') content[k] = true;
    else if (v.type === 'array') content[k] = v.items?.enum ? [v.items.enum[0]] : (v.items?.anyOf ? [v.items.anyOf[0].const] : []);
  }
  return { action: 'accept', content };
});
const ROOT = cfg.root;
const OUTSIDE = cfg.outside;
// Polls fn until it returns true, at most ms.
async function until(fn, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) { if (await fn()) return true; if (Date.now() > end) return false; await sleep(100); }
}
client.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: [{ uri: 'file://' + ROOT, name: 'allowed' }] }));
const logs = [];
client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => { logs.push(n.params); });
const updated = [];
client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => { updated.push(n.params); });

const t0 = Date.now();
await client.connect(transport);
const bridgePid = transport.pid;
const caps = client.getServerCapabilities();
results.caps = caps;
console.log(`INFO [${cfg.label}] connected in ${Date.now() - t0} ms; server ${JSON.stringify(client.getServerVersion())} caps ${JSON.stringify(caps)}`);

async function all(kind) {
  const method = { tools: 'listTools', prompts: 'listPrompts', resources: 'listResources', resourceTemplates: 'listResourceTemplates' }[kind];
  const out = []; let cursor; let pages = 0;
  do { const r = await client[method](cursor ? { cursor } : undefined); out.push(...r[kind]); cursor = r.nextCursor; pages++; } while (cursor && pages < 50);
  return out;
}
async function tryList(kind) { try { return await all(kind); } catch (e) { return { error: e.code ?? e.message }; } }
const tools = await all('tools');
const prompts = await tryList('prompts');
const resources = await tryList('resources');
const templates = await tryList('resourceTemplates');
console.log(`INFO tools ${tools.length}: ${tools.map((t) => t.name).join(' ')}`);
console.log(`INFO prompts: ${Array.isArray(prompts) ? prompts.map((p) => p.name).join(' ') : JSON.stringify(prompts)}`);
console.log(`INFO resources: ${Array.isArray(resources) ? resources.map((r) => r.uri).join(' ') : JSON.stringify(resources)}`);
console.log(`INFO templates: ${Array.isArray(templates) ? templates.map((r) => r.uriTemplate).join(' ') : JSON.stringify(templates)}`);
results.tools = tools; results.prompts = prompts; results.resources = resources; results.templates = templates;
const names = new Set(tools.map((t) => t.name));
check(names.size === tools.length, 'tool names unique');
for (const t of tools) check(/^[a-zA-Z0-9_-]{1,64}$/.test(t.name), `tool name valid ${t.name}`);

const call = async (name, args, opts = {}) => {
  try { return await client.callTool({ name, arguments: args }, CallToolResultSchema, opts); } catch (e) { return { thrown: true, code: e.code, message: e.message }; }
};
const text = (r) => (r?.content || []).filter((c) => c.type === 'text').map((c) => c.text).join('\n');

// ---------------------------------------------------------------- filesystem
if (S.fs !== undefined) {
  const p = S.fs;
  for (const n of ['read_text_file', 'list_directory', 'list_allowed_directories', 'write_file', 'directory_tree', 'search_files', 'get_file_info', 'read_multiple_files', 'read_media_file']) check(names.has(p + n), `fs tool listed ${p + n}`);
  // The server asks the host for its roots after initialized.
  let r;
  await until(async () => { r = await call(p + 'list_allowed_directories', {}); return text(r).includes(ROOT); });
  results.fs_allowed = r; check(text(r).includes(ROOT), 'fs allowed dirs include root', r);
  r = await call(p + 'read_text_file', { path: ROOT + '/a.txt' });
  results.fs_read = r; check(text(r) === 'hello allowed\n' && !r.isError, 'fs read_text_file inside', r);
  r = await call(p + 'read_file', { path: ROOT + '/a.txt', head: 1 });
  results.fs_read_head = r;
  r = await call(p + 'read_text_file', { path: OUTSIDE + '/s.txt' });
  results.fs_read_outside = r; check(r.isError === true && /denied|outside/i.test(text(r)), 'fs read outside denied', r);
  r = await call(p + 'read_text_file', { path: ROOT + '/../' + OUTSIDE.split('/').pop() + '/s.txt' });
  check(r.isError === true, 'fs traversal denied', r);
  r = await call(p + 'list_directory', { path: ROOT });
  results.fs_list = r; check(text(r).includes('[FILE] a.txt') && text(r).includes('[DIR] sub'), 'fs list_directory', r);
  r = await call(p + 'list_directory', { path: OUTSIDE });
  check(r.isError === true, 'fs list outside denied', r);
  r = await call(p + 'read_text_file', {});
  results.fs_read_noargs = r; check(r.isError === true || r.thrown, 'fs read_text_file without path is an error', r);
  r = await call(p + 'write_file', { path: ROOT + `/w-${cfg.label}.txt`, content: 'written ✓ ' + cfg.label });
  check(!r.isError && !r.thrown, 'fs write_file', r);
  r = await call(p + 'read_text_file', { path: ROOT + `/w-${cfg.label}.txt` });
  check(text(r) === 'written ✓ ' + cfg.label, 'fs read back written (utf8)', r);
  r = await call(p + 'directory_tree', { path: ROOT, excludePatterns: ['w-*'] });
  results.fs_tree = r; check(!r.isError && text(r).includes('a.txt'), 'fs directory_tree', r);
  r = await call(p + 'search_files', { path: ROOT, pattern: '**/*.md' });
  results.fs_search = r; check(text(r).includes('b.md'), 'fs search_files', r);
  r = await call(p + 'get_file_info', { path: ROOT + '/a.txt' });
  check(text(r).includes('size: 14'), 'fs get_file_info', r);
  r = await call(p + 'read_multiple_files', { paths: [ROOT + '/a.txt', OUTSIDE + '/s.txt'] });
  results.fs_multi = r; check(text(r).includes('hello allowed') && /denied|Error/i.test(text(r)), 'fs read_multiple_files mixed', r);
  r = await call(p + 'read_media_file', { path: ROOT + '/a.txt' });
  results.fs_media = r;
  check(r.content?.[0]?.type && !r.thrown, 'fs read_media_file answered', r);
}

// ---------------------------------------------------------------- memory
if (S.mem !== undefined) {
  const p = S.mem;
  for (const n of ['create_entities', 'create_relations', 'read_graph', 'search_nodes', 'open_nodes', 'delete_entities']) check(names.has(p + n), `mem tool listed ${p + n}`);
  const kg = Array.isArray(resources) ? resources.find((x) => x.uri.startsWith('memory://') || /graph/i.test(x.name)) : undefined;
  check(!!kg, 'mem knowledge-graph resource listed', resources);
  if (kg && caps.resources?.subscribe) { await client.subscribeResource({ uri: kg.uri }); }
  let r = await call(p + 'create_entities', { entities: [{ name: 'Alice', entityType: 'person', observations: ['likes tea'] }, { name: 'Bob', entityType: 'person', observations: [] }] });
  results.mem_create = r; check(!r.isError && r.structuredContent?.entities?.length === 2, 'mem create_entities', r);
  r = await call(p + 'create_relations', { relations: [{ from: 'Alice', to: 'Bob', relationType: 'knows' }] });
  check(!r.isError, 'mem create_relations', r);
  r = await call(p + 'read_graph', {});
  results.mem_graph = r; check(r.structuredContent?.entities?.length === 2 && r.structuredContent?.relations?.length === 1, 'mem read_graph', r);
  r = await call(p + 'search_nodes', { query: 'tea' });
  check(r.structuredContent?.entities?.[0]?.name === 'Alice', 'mem search_nodes', r);
  r = await call(p + 'open_nodes', { names: ['Bob'] });
  check(r.structuredContent?.entities?.[0]?.name === 'Bob', 'mem open_nodes', r);
  r = await call(p + 'create_entities', { entities: 'not-an-array' });
  results.mem_invalid = r; check(r.isError === true || r.thrown, 'mem create_entities invalid args -> error', r);
  if (kg) {
    const rr = await client.readResource({ uri: kg.uri });
    results.mem_resource = rr; check(rr.contents?.[0]?.text?.includes('Alice'), 'mem read knowledge-graph resource', rr);
    await until(() => updated.some((u) => u.uri === kg.uri), 5000);
    check(updated.some((u) => u.uri === kg.uri), 'mem resources/updated after mutation (subscribed)', updated);
  }
  r = await call(p + 'delete_entities', { entityNames: ['Alice', 'Bob'] });
  check(!r.isError, 'mem delete_entities', r);
}

// ---------------------------------------------------------------- sequential thinking
if (S.think !== undefined) {
  const p = S.think;
  check(names.has(p + 'sequentialthinking'), 'think tool listed');
  let r = await call(p + 'sequentialthinking', { thought: 'first', nextThoughtNeeded: true, thoughtNumber: 1, totalThoughts: 2 });
  results.think_1 = r; check(!r.isError && text(r).includes('"thoughtNumber": 1'), 'think call 1', r);
  r = await call(p + 'sequentialthinking', { thought: 'second', nextThoughtNeeded: false, thoughtNumber: 2, totalThoughts: 2 });
  check(!r.isError && text(r).includes('"thoughtHistoryLength": 2'), 'think call 2 (state kept)', r);
  r = await call(p + 'sequentialthinking', { thought: 'bad' });
  results.think_invalid = r; check(r.isError === true || r.thrown, 'think invalid args -> error', r);
}

// ---------------------------------------------------------------- everything
if (S.every !== undefined) {
  const p = S.every;
  for (const n of ['echo', 'get-sum', 'trigger-long-running-operation', 'trigger-sampling-request', 'trigger-elicitation-request', 'get-roots-list', 'get-structured-content', 'get-annotated-message']) check(names.has(p + n), `every tool listed ${p + n}`);
  let r = await call(p + 'echo', { message: 'héllo ✓ "quoted" \u2028 9007199254740993' });
  results.ev_echo = r; check(text(r) === 'Echo: héllo ✓ "quoted" \u2028 9007199254740993', 'every echo', r);
  r = await call(p + 'get-sum', { a: 2, b: 40 });
  results.ev_sum = r; check(text(r).includes('42'), 'every get-sum', r);
  r = await call(p + 'get-sum', { a: 'x' });
  results.ev_sum_bad = r; check(r.isError === true || r.thrown, 'every get-sum invalid -> error', r);
  r = await call(p + 'get-annotated-message', { messageType: 'error', includeImage: true });
  results.ev_annot = r; check(r.content?.[0]?.annotations?.priority === 1.0 && r.content?.some((c) => c.type === 'image'), 'every annotated', r);
  r = await call(p + 'get-structured-content', { location: 'New York' });
  results.ev_struct = r; check(r.structuredContent && typeof r.structuredContent.temperature === 'number', 'every structuredContent', r);
  r = await call(p + 'get-tiny-image', {});
  results.ev_img = r; check(r.content?.some((c) => c.type === 'image' && c.data.length > 100), 'every tiny image', r);
  r = await call(p + 'get-resource-links', { count: 3 });
  results.ev_links = r; check(r.content?.filter((c) => c.type === 'resource_link').length === 3, 'every resource links', r);
  r = await call(p + 'get-resource-reference', { resourceType: 'Text', resourceId: 2 });
  results.ev_ref = r; check(r.content?.some((c) => c.type === 'resource'), 'every resource reference', r);
  r = await call(p + 'get-roots-list', {});
  results.ev_roots = r; check(text(r).includes(ROOT), 'every get-roots-list shows host roots', r);
  // cfg.everyLight skips what takes seconds (progress over 2 s, log and
  // update timers of 6 s, a long call to cancel): the interop suite's other
  // tests drive those.
  if (!cfg.everyLight) {
  // progress
  const prog = [];
  r = await call(p + 'trigger-long-running-operation', { duration: 2, steps: 4 }, { onprogress: (x) => prog.push(x), timeout: 20000 });
  check(!r.isError && !r.thrown && prog.length >= 3 && rawIn.filter((m) => m.method === 'notifications/progress' && m.params.progress === 4).length >= 1, 'every long op with 4 progress (raw)', { r, prog, raw: rawIn.slice(-8).map((m) => m.method ? m.method + ' ' + JSON.stringify(m.params?.progress) : 'answer ' + m.id) });
  }
  // sampling
  r = await call(p + 'trigger-sampling-request', { prompt: 'hi there', maxTokens: 10 }, { timeout: 20000 });
  results.ev_sampling = r; check(text(r).includes('hi there') && text(r).includes('review38-model') && samplingSeen.length >= 1, 'every sampling via host', r);
  // elicitation
  r = await call(p + 'trigger-elicitation-request', {}, { timeout: 20000 });
  results.ev_elicit = r; check(!r.isError && !r.thrown && elicitSeen.length >= 1 && /accept/i.test(text(r)), 'every elicitation via host', r);
  if (names.has(p + 'trigger-url-elicitation')) {
    r = await call(p + 'trigger-url-elicitation', { url: 'https://example.com/x', elicitationId: 'e1' }, { timeout: 20000 });
    results.ev_urlelicit = r;
    const u = elicitSeen.find((e) => e.mode === 'url');
    check(!r.thrown && u, 'every url elicitation via host', { r, u });
    console.log('INFO url elicitationId seen by host: ' + u?.elicitationId);
  }
  // prompts
  let g = await client.getPrompt({ name: p + 'args-prompt', arguments: { city: 'Paris', state: 'TX' } });
  results.ev_prompt = g; check(JSON.stringify(g).includes('Paris'), 'every args-prompt', g);
  try { g = await client.getPrompt({ name: p + 'args-prompt', arguments: {} }); check(false, 'every args-prompt missing required -> error', g); } catch (e) { results.ev_prompt_bad = { code: e.code, message: e.message }; check(true, 'every args-prompt missing required -> error ' + e.code); }
  g = await client.getPrompt({ name: p + 'resource-prompt', arguments: { resourceType: 'Text', resourceId: '3' } });
  check(JSON.stringify(g).includes('demo://resource/dynamic/text/3'), 'every resource-prompt', g);
  try {
    const c = await client.complete({ ref: { type: 'ref/prompt', name: p + 'completable-prompt' }, argument: { name: 'department', value: 'E' } });
    results.ev_complete = c; check(c.completion.values.includes('Engineering'), 'every completion', c);
  } catch (e) { check(false, 'every completion', e.message); }
  // resources
  const rr = await client.readResource({ uri: 'demo://resource/dynamic/text/5' });
  results.ev_read = rr; check(rr.contents?.[0]?.uri === 'demo://resource/dynamic/text/5', 'every read dynamic text', rr);
  const rb = await client.readResource({ uri: 'demo://resource/dynamic/blob/5' });
  check(!!rb.contents?.[0]?.blob, 'every read dynamic blob', rb);
  try { const x = await client.readResource({ uri: 'demo://resource/nope/1' }); check(false, 'every read unknown -> error', x); } catch (e) { results.ev_read_bad = { code: e.code }; check(true, 'every read unknown -> error ' + e.code + ' ' + e.message); }
  if (Array.isArray(resources)) { const st = resources.find((x) => x.uri.startsWith('demo://resource/static')); if (st) { const x = await client.readResource({ uri: st.uri }); check(x.contents?.[0]?.text?.length > 0, 'every read static doc ' + st.uri); } }
  if (!cfg.everyLight) {
  // logging
  await client.setLoggingLevel('debug');
  const before = logs.length;
  r = await call(p + 'toggle-simulated-logging', {});
  await sleep(cfg.logWaitMs || 6000);
  r = await call(p + 'toggle-simulated-logging', {});
  const mine = logs.slice(before);
  console.log(`INFO ${mine.length} log notifications; loggers ${[...new Set(mine.map((l) => l.logger))].join(',')}; levels ${[...new Set(mine.map((l) => l.level))].join(',')}`);
  check(mine.length > 0, 'every simulated logging arrives at debug', mine.length);
  await client.setLoggingLevel('error');
  const b2 = logs.length;
  r = await call(p + 'toggle-simulated-logging', {});
  await sleep(cfg.logWaitMs || 6000);
  r = await call(p + 'toggle-simulated-logging', {});
  const lowAfter = logs.slice(b2).filter((l) => ['debug', 'info', 'notice', 'warning'].includes(l.level));
  check(lowAfter.length === 0, 'every setLevel error filters lower levels', logs.slice(b2));
  // subscribe
  const su = 'demo://resource/dynamic/text/1';
  await client.subscribeResource({ uri: su });
  const ub = updated.length;
  await call(p + 'toggle-subscriber-updates', {});
  await sleep(cfg.subWaitMs || 6000);
  await call(p + 'toggle-subscriber-updates', {});
  check(updated.slice(ub).some((u) => u.uri === su), 'every resources/updated for subscription', updated.slice(ub));
  await client.unsubscribeResource({ uri: su });
  // cancel a long call
  const ac = new AbortController();
  const tc = Date.now();
  const pr = call(p + 'trigger-long-running-operation', { duration: 30, steps: 30 }, { signal: ac.signal, onprogress: () => {}, timeout: 60000 });
  await sleep(1500); sentIds[sentIds.length - 1].cancelled = true; ac.abort('review38 cancel');
  r = await pr;
  check(r.thrown && Date.now() - tc < 5000, 'every cancel long call returns promptly', r);
  r = await call(p + 'echo', { message: 'after cancel' });
  check(text(r) === 'Echo: after cancel', 'every usable after cancel', r);
  }
  // unknown tool
  r = await call(p + 'no-such-tool', {});
  results.ev_unknown = r; check(r.thrown || r.isError, 'unknown tool -> error', r);
  // concurrent calls
  const many = await Promise.all(Array.from({ length: 10 }, (_, i) => call(p + 'get-sum', { a: i, b: 1000 })));
  check(many.every((m, i) => text(m).includes(String(i + 1000))), 'every 10 concurrent calls each right', many.map(text));
}

// ping
await client.ping();
check(true, 'ping');

// ---------------------------------------------------------------- accounting and exit
await sleep(500);
check(violations.length === 0, 'stdout only JSON-RPC', violations);
let bad = [];
for (const s of sentIds) { if (s.cancelled) continue; const n = answers.get(s.id) || 0; if (n !== 1) bad.push(`${s.method} id ${s.id} answered ${n}x`); }
check(bad.length === 0, `every request (${sentIds.length}) answered exactly once`, bad);
const orphan = [...answers.keys()].filter((k) => !sentIds.some((s) => s.id === k));
check(orphan.length === 0, 'no answers to ids never sent', orphan);

function descendants(pid) {
  const out = [];
  const txt = execSync('ps -eo pid=,ppid=').toString();
  const kids = new Map();
  for (const l of txt.trim().split('\n')) { const [a, b] = l.trim().split(/\s+/).map(Number); if (!kids.has(b)) kids.set(b, []); kids.get(b).push(a); }
  const st = [pid];
  while (st.length) { const x = st.pop(); for (const k of kids.get(x) || []) { out.push(k); st.push(k); } }
  return out;
}
const tree = [bridgePid, ...descendants(bridgePid)];
console.log(`INFO process tree before close: ${tree.join(' ')}`);
const tcl = Date.now();
await client.close();
let alive = tree;
while (Date.now() - tcl < 8000) {
  alive = tree.filter((x) => { try { process.kill(x, 0); return true; } catch { return false; } });
  // zombie check
  alive = alive.filter((x) => { try { return !/^\s*Z/.test(execSync(`ps -o stat= -p ${x}`).toString()); } catch { return false; } });
  if (alive.length === 0) break;
  await sleep(100);
}
check(alive.length === 0, `bridge and children gone after close (${Date.now() - tcl} ms)`, alive);
if (cfg.out) fs.writeFileSync(cfg.out, JSON.stringify(results, null, 1));
if (cfg.stderrOut) fs.writeFileSync(cfg.stderrOut, stderrBuf);
console.log(`DONE [${cfg.label}] fails=${fails} checks=${checks} in ${Date.now() - t0} ms`);
clearTimeout(watchdog);
process.exit(fails ? 1 : 0);
