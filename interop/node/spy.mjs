#!/usr/bin/env node
// spy.mjs: a transparent stdio wrapper that records what a stdio MCP server
// receives and sends, so a test can prove what reached the backend.
//
//   node spy.mjs LOGFILE -- COMMAND ARGS...
//
// stdin is relayed to COMMAND's stdin, COMMAND's stdout to our stdout, its
// stderr is inherited. Every complete line in either direction is appended to
// LOGFILE as {"t":ms,"dir":"to-backend"|"from-backend","line":"..."} (lines
// over 64 KiB are recorded truncated, with "truncated":true).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { StringDecoder } from 'node:string_decoder';

const argv = process.argv.slice(2);
const sep = argv.indexOf('--');
if (argv.length < 3 || sep !== 1) {
  process.stderr.write('usage: node spy.mjs LOGFILE -- COMMAND ARGS...\n');
  process.exit(2);
}
const logFd = fs.openSync(argv[0], 'a');
const [cmd, ...args] = argv.slice(2);
const MAX = 64 * 1024;

function tee(dir) {
  const dec = new StringDecoder('utf8');
  let pend = '';
  return (chunk) => {
    pend += dec.write(chunk);
    let i;
    while ((i = pend.indexOf('\n')) !== -1) {
      let line = pend.slice(0, i);
      pend = pend.slice(i + 1);
      const rec = { t: Date.now(), dir, line };
      if (line.length > MAX) {
        rec.line = line.slice(0, MAX);
        rec.truncated = true;
      }
      fs.writeSync(logFd, JSON.stringify(rec) + '\n');
    }
  };
}

const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] });
const toBackend = tee('to-backend');
const fromBackend = tee('from-backend');

process.stdin.on('data', (c) => {
  toBackend(c);
  child.stdin.write(c);
});
process.stdin.on('end', () => child.stdin.end());
child.stdin.on('error', () => {});
child.stdout.on('data', (c) => {
  fromBackend(c);
  process.stdout.write(c);
});
child.on('error', (e) => {
  process.stderr.write(`spy: cannot start ${cmd}: ${e.message}\n`);
  process.exit(127);
});
child.on('exit', (code, sig) => {
  fs.writeSync(logFd, JSON.stringify({ t: Date.now(), dir: 'exit', line: `code=${code} signal=${sig}` }) + '\n');
  process.exit(code ?? 1);
});
for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.on(s, () => {
    child.kill(s);
    setTimeout(() => {
      child.kill('SIGKILL');
      process.exit(1);
    }, 2000).unref();
  });
}
