// resume-server.mjs: a streamable-HTTP MCP server on the TypeScript SDK with
// the SDK's own example InMemoryEventStore (per-stream replay, returns the
// stream id), for checking answer-stream resumption. PORT from env.
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { InMemoryEventStore } from '@modelcontextprotocol/sdk/examples/shared/inMemoryEventStore.js';

const transports = new Map();
function makeServer() {
  const s = new McpServer({ name: 'resume-server', version: '0.0.1' });
  s.registerTool('echo', { inputSchema: { message: z.string() } }, async ({ message }) => ({ content: [{ type: 'text', text: `Echo: ${message}` }] }));
  s.registerTool('trigger-long-running-operation', { inputSchema: { duration: z.number(), steps: z.number() } }, async ({ duration, steps }, extra) => {
    const tok = extra._meta?.progressToken;
    for (let i = 1; i <= steps; i++) {
      await new Promise((r) => setTimeout(r, (duration * 1000) / steps));
      if (tok !== undefined) await extra.sendNotification({ method: 'notifications/progress', params: { progress: i, total: steps, progressToken: tok } });
    }
    return { content: [{ type: 'text', text: `Long running operation completed. Duration: ${duration} seconds, Steps: ${steps}.` }] };
  });
  return s;
}
const srv = http.createServer(async (req, res) => {
  const body = [];
  for await (const c of req) body.push(c);
  const text = Buffer.concat(body).toString('utf8');
  const parsed = text ? JSON.parse(text) : undefined;
  const sid = req.headers['mcp-session-id'];
  console.log(`${req.method} sid=${sid} lei=${req.headers['last-event-id'] ?? ''}`);
  let t = sid ? transports.get(sid) : undefined;
  if (!t) {
    if (sid || req.method !== 'POST') {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null }));
      return;
    }
    t = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      eventStore: new InMemoryEventStore(),
      onsessioninitialized: (id) => transports.set(id, t),
    });
    await makeServer().connect(t);
  }
  await t.handleRequest(req, res, parsed);
});
srv.listen(Number(process.env.PORT), () => console.log(`listening on ${process.env.PORT}`));
