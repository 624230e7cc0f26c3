// Load, cancellation and backpressure against `troupe serve` on 127.0.0.1, bounded in count and time:
//  1. 100 streams closed after a few tokens (and 20 clients gone before a non-streamed answer) leave
//     zero running requests and zero used KV blocks;
//  2. 1,000 simultaneous requests against a small --max-waiting get only 200s and 429s (with
//     Retry-After), every 200 is complete, and the server's memory stays bounded;
//  3. 1,000 streaming connections are held open at once and every one completes.
//  4. SIGTERM drains: 503 for new requests, streams finish within the grace period (or are cut), exit 0.
// usage: node openai_load.js --troupe BIN --model DIR [--only cancel|backpressure|streams|drain]
'use strict';

const fs = require('fs');
const http = require('http');
const { arg, fail, check, startServer, sleep, metrics } = require('./openai_server.js');

const troupe = arg('troupe');
const model = arg('model');
const only = arg('only');

/// One POST with Node's http module. `onChunk(text, req)` sees the response start ('') and then the bytes so
/// far as they stream in (and may destroy req).
/// Resolves with {status, headers, body, aborted}.
function post(base, route, body, onChunk) {
  return new Promise((resolve) => {
    const data = JSON.stringify(body);
    const req = http.request(base + route, {
      method: 'POST', agent: false,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) },
    }, (res) => {
      if (onChunk) onChunk('', req, res);
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        text += d;
        if (onChunk) onChunk(text, req, res);
      });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: text, aborted: false }));
      res.on('close', () => resolve({ status: res.statusCode, headers: res.headers, body: text, aborted: true }));
    });
    req.on('error', (e) => resolve({ status: 0, error: e.message, body: '', aborted: true }));
    req.end(data);
  });
}

function rssMiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync('/proc/' + pid + '/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

async function waitFor(what, fn, ms) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last === true) return;
    await sleep(50);
  }
  fail(what + ' (last: ' + JSON.stringify(last) + ')');
}

/// The SSE "data:" payloads of a body.
const events = (body) => body.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => e.slice(6));

async function cancelTest() {
  const server = await startServer(troupe, ['--model', model, '--max-num-seqs', '32', '--max-waiting', '256']);
  const started = Date.now();
  const results = await Promise.all(Array.from({ length: 100 }, (_, i) =>
    post(server.base, '/v1/completions',
      { prompt: 'Once upon a time ' + i, max_tokens: 400, ignore_eos: true, stream: true, temperature: 0 },
      (text, req) => { if (events(text).length >= 3) req.destroy(); })));
  const tokensSeen = results.filter((r) => r.status === 200 && events(r.body).length >= 3).length;
  check(tokensSeen === 100, 'streams that got 3 events before closing: ' + tokensSeen);
  // Not streamed: 20 clients hang up while their answers are being generated.
  await Promise.all(Array.from({ length: 20 }, (_, i) => new Promise((resolve) => {
    const data = JSON.stringify({ prompt: 'Once more ' + i, max_tokens: 400, ignore_eos: true });
    const req = http.request(server.base + '/v1/completions', { method: 'POST', agent: false,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) } });
    req.on('error', () => resolve());
    req.on('response', () => fail('a non-streamed answer came before the client left'));
    req.end(data);
    setTimeout(() => { req.destroy(); resolve(); }, 300);
  })));
  await waitFor('running requests and used KV blocks back to zero after 120 clients left', async () => {
    const m = await metrics(server.base);
    return (m.troupe_requests_running === 0 && m.troupe_requests_waiting === 0 && m.troupe_kv_blocks_used === 0) ||
      { running: m.troupe_requests_running, waiting: m.troupe_requests_waiting, used: m.troupe_kv_blocks_used };
  }, 10000);
  const m = await metrics(server.base);
  check(m['troupe_requests_finished_total{reason="abort"}'] >= 120,
    'aborted requests counted: ' + m['troupe_requests_finished_total{reason="abort"}']);
  check(m['troupe_requests_finished_total{reason="length"}'] === 0, 'a closed stream ran to its length');
  await server.stop();
  console.log('cancel: 100 streams closed after 3 events, 20 clients gone before their answer; 0 running, ' +
    '0 used blocks (' + (Date.now() - started) + ' ms)');
}

async function backpressureTest() {
  const server = await startServer(troupe, ['--model', model, '--max-num-seqs', '4', '--max-waiting', '8']);
  const rssBefore = rssMiB(server.proc.pid);
  let rssPeak = rssBefore;
  const sampler = setInterval(() => { rssPeak = Math.max(rssPeak, rssMiB(server.proc.pid)); }, 50);
  const started = Date.now();
  const results = await Promise.all(Array.from({ length: 1000 }, (_, i) =>
    post(server.base, '/v1/completions', { prompt: 'The cat ' + i, max_tokens: 8, ignore_eos: true, temperature: 0 })));
  clearInterval(sampler);
  const counts = {};
  for (const r of results) counts[r.status] = (counts[r.status] || 0) + 1;
  check(Object.keys(counts).every((s) => s === '200' || s === '429'), 'statuses other than 200/429: ' + JSON.stringify(counts));
  check((counts[200] || 0) >= 8, 'too few 200s: ' + JSON.stringify(counts));
  check((counts[429] || 0) > 0, 'no 429 with --max-waiting 8: ' + JSON.stringify(counts));
  for (const r of results) {
    const b = JSON.parse(r.body);
    if (r.status === 429) {
      check(r.headers['retry-after'] === '1' && b.error && b.error.type === 'rate_limit_exceeded', '429 shape: ' + r.body);
      continue;
    }
    check(b.choices.length === 1 && b.choices[0].finish_reason === 'length' && b.usage.completion_tokens === 8 &&
      b.choices[0].text.length > 0, 'an incomplete 200: ' + r.body);
  }
  check(rssPeak - rssBefore < 512, 'server memory grew by ' + (rssPeak - rssBefore).toFixed(0) + ' MiB');
  const m = await metrics(server.base);
  check(m.troupe_requests_running === 0 && m.troupe_kv_blocks_used === 0, 'requests left over after the burst');
  await server.stop();
  console.log('backpressure: 1000 requests -> ' + JSON.stringify(counts) + ', RSS ' + rssBefore.toFixed(0) + ' -> ' +
    rssPeak.toFixed(0) + ' MiB (' + (Date.now() - started) + ' ms)');
}

async function streamsTest() {
  const N = 1000;
  const server = await startServer(troupe, ['--model', model, '--max-waiting', String(N), '--max-num-seqs', '256']);
  const started = Date.now();
  let open = 0;
  let peak = 0;
  let peakWaitingRunning = 0;
  const watcher = setInterval(async () => {
    try {
      const m = await metrics(server.base);
      peakWaitingRunning = Math.max(peakWaitingRunning, m.troupe_requests_running + m.troupe_requests_waiting);
    } catch (e) { /* the server is busy; the next sample will do */ }
  }, 200);
  const results = await Promise.all(Array.from({ length: N }, (_, i) => {
    let counted = false;
    return post(server.base, '/v1/completions',
      { prompt: 'A story ' + i, max_tokens: 200, ignore_eos: true, stream: true, temperature: 0,
        stream_options: { include_usage: true } },
      () => { if (!counted) { counted = true; ++open; peak = Math.max(peak, open); } })
      .then((r) => { if (counted) --open; return r; });
  }));
  clearInterval(watcher);
  let complete = 0;
  for (const r of results) {
    const ev = events(r.body);
    if (r.status !== 200 || ev[ev.length - 1] !== '[DONE]') continue;
    const usage = JSON.parse(ev[ev.length - 2]).usage;
    if (usage && usage.completion_tokens === 200) ++complete;
  }
  if (complete !== N) {  // say how the others ended
    const ends = {};
    for (const r of results) {
      const ev = events(r.body);
      const key = 'status ' + r.status + (r.error ? ' (' + r.error + ')' : '') + (r.aborted ? ', closed early' : '') +
        ', last event ' + JSON.stringify((ev[ev.length - 1] || '').slice(0, 60));
      ends[key] = (ends[key] || 0) + 1;
    }
    console.log('how the streams ended: ' + JSON.stringify(ends));
  }
  check(complete === N, 'complete streams: ' + complete + ' of ' + N);
  check(peak === N, 'streams open at once: ' + peak + ' of ' + N);
  await server.stop();
  console.log('streams: ' + N + ' streaming connections open at once (peak running+waiting ' + peakWaitingRunning +
    '), all complete (' + (Date.now() - started) + ' ms)');
}

/// SIGTERM while streams run: /health and new requests get 503, the streams finish (long grace) or end
/// with finish_reason "abort" (no grace), and the server exits 0.
async function drainTest(graceSeconds, tokens) {
  const server = await startServer(troupe, ['--model', model, '--max-num-seqs', '8',
    '--grace-seconds', String(graceSeconds), '--threads', '1']);
  let started = 0;
  let signalled = false;
  const streams = Promise.all(Array.from({ length: 20 }, (_, i) =>
    post(server.base, '/v1/completions', { prompt: 'A tale ' + i, max_tokens: tokens, ignore_eos: true,
      stream: true, temperature: 0, stream_options: { include_usage: true } },
    (text) => { if (text === '') ++started; })));
  await waitFor('20 streams started', async () => started === 20, 10000);
  server.proc.kill('SIGTERM');
  signalled = true;
  await sleep(100);
  const health = await new Promise((resolve) => http.get(server.base + '/health', { agent: false },
    (res) => { res.resume(); resolve(res.statusCode); }).on('error', () => resolve(0)));
  const late = await post(server.base, '/v1/completions', { prompt: 'late', max_tokens: 2 });
  const results = await streams;
  await server.stop();
  check(signalled, 'no signal sent');
  let finished = 0;
  let aborted = 0;
  for (const r of results) {
    const ev = events(r.body);
    check(r.status === 200 && ev[ev.length - 1] === '[DONE]', 'a stream did not end with [DONE]: ' + r.body.slice(-300));
    const usage = JSON.parse(ev[ev.length - 2]).usage;
    if (usage && usage.completion_tokens === tokens) ++finished;
    if (r.body.includes('"finish_reason":"abort"')) ++aborted;
  }
  if (graceSeconds > 0) {
    check(health === 503 || health === 0, '/health while draining: ' + health);
    check(late.status === 503 || late.status === 0, 'a request while draining got ' + late.status);
    check(finished === 20, 'streams that finished within the grace period: ' + finished);
  } else {
    check(aborted > 0, 'no stream was cut at the end of a zero grace period');
  }
  console.log('drain (grace ' + graceSeconds + ' s): /health ' + health + ', new request ' + late.status + ', ' +
    finished + ' finished, ' + aborted + ' aborted, exit 0');
}

async function main() {
  if (!only || only === 'cancel') await cancelTest();
  if (!only || only === 'backpressure') await backpressureTest();
  if (!only || only === 'streams') await streamsTest();
  if (!only || only === 'drain') {
    await drainTest(60, 60);
    await drainTest(0, 400);
  }
}

main().catch((e) => fail(e.stack || String(e)));
