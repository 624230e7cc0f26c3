// Shared by the HTTP end-to-end tests: starts `troupe serve` on 127.0.0.1 (any free port), reads its
// port from stdout, scrapes /metrics, and stops it with SIGTERM (expecting exit status 0).
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');
const { spawn } = require('child_process');

function arg(name, def) {
  const i = process.argv.indexOf('--' + name);
  return i > 0 ? process.argv[i + 1] : def;
}

function fail(msg) {
  console.error('FAIL: ' + msg);
  process.exit(1);
}

function check(cond, msg) {
  if (!cond) fail(msg);
}

/// Starts the server; resolves with {proc, port, base, stop()} once it answers /health with 200.
async function startServer(troupe, args, { readyTimeoutMs = 60000 } = {}) {
  const proc = spawn(troupe, ['serve', '--host', '127.0.0.1', '--port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { err += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const deadline = Date.now() + readyTimeoutMs;
  let port = 0;
  while (Date.now() < deadline) {
    const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
    if (m) port = Number(m[1]);
    if (port && /ready: serving/.test(out)) break;
    if (proc.exitCode !== null) fail('troupe serve exited early: ' + err + out);
    await sleep(50);
  }
  if (!port || !/ready: serving/.test(out)) {
    proc.kill('SIGKILL');
    fail('troupe serve did not become ready: ' + err + out);
  }
  const base = 'http://127.0.0.1:' + port;
  const health = await get(base + '/health');
  check(health.status === 200, '/health answered ' + health.status + ' once ready');
  return {
    proc, port, base,
    output: () => out + err,
    /// SIGTERM, then the exit status must be 0 within `ms`.
    async stop(ms = 30000) {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), ms);
      const { code, signal } = await exited;
      clearTimeout(timer);
      check(code === 0, 'troupe serve exited with ' + code + ' / ' + signal + ' after SIGTERM: ' + err);
    },
  };
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/// A GET with Node's http module: {status, headers, body}.
function get(url) {
  return new Promise((resolve, reject) => {
    http.get(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    }).on('error', reject);
  });
}

/// /metrics as {name or name{labels}: value}.
async function metrics(base) {
  const r = await get(base + '/metrics');
  check(r.status === 200, '/metrics answered ' + r.status);
  const out = {};
  for (const line of r.body.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out[line.slice(0, at)] = Number(line.slice(at + 1));
  }
  return out;
}

/// A copy of a model folder (weights linked) whose tokenizer_config.json carries `template`.
function modelWithTemplate(modelDir, work, template) {
  const dir = path.join(work, 'chatmodel');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  for (const f of fs.readdirSync(modelDir)) {
    const src = path.join(modelDir, f);
    if (f === 'tokenizer_config.json') {
      const cfg = JSON.parse(fs.readFileSync(src, 'utf8'));
      cfg.chat_template = template;
      fs.writeFileSync(path.join(dir, f), JSON.stringify(cfg, null, 2));
    } else if (fs.statSync(src).isFile()) {
      fs.symlinkSync(src, path.join(dir, f));
    }
  }
  return dir;
}

module.exports = { arg, fail, check, startServer, sleep, get, metrics, modelWithTemplate };
