// End-to-end: the official `openai` npm client against `troupe serve` on the bundled model.
// Completions and chat completions, streamed and not, equal the engine's own outputs
// (`troupe generate --prompts-file`, engine::llm) for the same seeds; errors arrive as the client's
// typed errors; SIGTERM exits 0. Exits 1 on the first difference.
// usage: node openai_client.js --troupe BIN --model DIR --work DIR
'use strict';

const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');
const { arg, fail, check, startServer, modelWithTemplate } = require('./openai_server.js');

let OpenAI;
try {
  ({ OpenAI } = require('openai'));
} catch (e) {
  fail('the npm test tooling is missing (' + e.message.split('\n')[0] + '); run `make deps`');
}

const troupe = arg('troupe');
const modelDir = arg('model');
const work = arg('work', fs.mkdtempSync('/tmp/troupe-openai-'));
fs.mkdirSync(work, { recursive: true });
const TEMPLATE = '{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}' +
  '{% if add_generation_prompt %}assistant:{% endif %}';
const API_KEY = 'sk-troupe-test';

// Requests checked against the engine: greedy, seeded sampling with n > 1, stops, penalties and bias.
const CASES = [
  { prompt: 'Once upon a time', max_tokens: 40, temperature: 0 },
  { prompt: 'The little dog', max_tokens: 30, temperature: 0.8, seed: 42, n: 2 },
  { prompt: 'Lily went to the park', max_tokens: 30, temperature: 1.0, top_k: 20, top_p: 0.9, seed: 7, stop: ['.'] },
  { prompt: 'Tom had a ball', max_tokens: 24, temperature: 0.7, seed: 3, presence_penalty: 0.5,
    frequency_penalty: 0.3, repetition_penalty: 1.2, min_p: 0.05, logit_bias: { '13': -100 } },
  { prompt: 'One day', max_tokens: 20, temperature: 0, ignore_eos: true },
];

/// engine::llm's outputs for the cases: one JSON line per case from `troupe generate --prompts-file`.
function engineOutputs(dir) {
  const file = path.join(work, 'cases.jsonl');
  fs.writeFileSync(file, CASES.map((c) => JSON.stringify(c) + '\n').join(''));
  const out = execFileSync(troupe, ['generate', '--model', dir, '--prompts-file', file, '--json'],
    { encoding: 'utf8', maxBuffer: 1 << 26 });
  return out.split('\n').filter((l) => l).map((l) => JSON.parse(l));
}

function same(a, b, what) {
  if (JSON.stringify(a) !== JSON.stringify(b))
    fail(what + ':\n  got      ' + JSON.stringify(a) + '\n  expected ' + JSON.stringify(b));
}

/// Concatenates a stream's text per choice; returns {texts, finish, usage, ids}.
async function collect(stream, chat) {
  const texts = [];
  const finish = [];
  const ids = new Set();
  let usage = null;
  let roleSeen = false;
  for await (const chunk of stream) {
    ids.add(chunk.id);
    check(chunk.object === (chat ? 'chat.completion.chunk' : 'text_completion'), 'chunk object ' + chunk.object);
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      const piece = chat ? (c.delta.content || '') : c.text;
      if (chat && c.delta.role === 'assistant') roleSeen = true;
      texts[c.index] = (texts[c.index] || '') + piece;
      if (c.finish_reason) finish[c.index] = c.finish_reason;
    }
  }
  if (chat) check(roleSeen, 'no chunk carried the assistant role');
  check(ids.size === 1, 'stream chunks carry ' + ids.size + ' ids');
  return { texts, finish, usage };
}

async function main() {
  const dir = modelWithTemplate(modelDir, work, TEMPLATE);
  const expected = engineOutputs(dir);
  const server = await startServer(troupe, ['--model', dir, '--api-key', API_KEY, '--threads', '1']);
  const client = new OpenAI({ apiKey: API_KEY, baseURL: server.base + '/v1', maxRetries: 0 });

  const models = await client.models.list();
  check(models.data.length === 1 && models.data[0].id === 'chatmodel', 'models: ' + JSON.stringify(models.data));
  const model = models.data[0].id;

  for (let k = 0; k < CASES.length; ++k) {
    const c = CASES[k];
    const want = expected[k].samples.map((s) => s.text);
    const wantFinish = expected[k].samples.map((s) => s.finish_reason);
    const r = await client.completions.create({ model, ...c });
    check(r.id.startsWith('cmpl-') && r.object === 'text_completion' && r.model === model, 'completion head');
    check(typeof r.created === 'number' && typeof r.system_fingerprint === 'string', 'created/system_fingerprint');
    same(r.choices.map((x) => x.index), want.map((_, i) => i), 'case ' + k + ' choice indexes');
    same(r.choices.map((x) => x.text), want, 'case ' + k + ' HTTP text vs engine::llm');
    same(r.choices.map((x) => x.finish_reason), wantFinish, 'case ' + k + ' finish_reason');
    same(r.usage.prompt_tokens, expected[k].prompt_ids.length, 'case ' + k + ' usage.prompt_tokens');
    const outTokens = expected[k].samples.reduce((n, s) => n + s.output_ids.length, 0);
    check(r.usage.completion_tokens >= outTokens && r.usage.completion_tokens <= outTokens + want.length,
      'case ' + k + ' usage.completion_tokens ' + r.usage.completion_tokens + ' vs ' + outTokens + ' ids');
    check(r.usage.total_tokens === r.usage.prompt_tokens + r.usage.completion_tokens, 'total_tokens');

    const s = await collect(await client.completions.create({
      model, ...c, stream: true, stream_options: { include_usage: true } }), false);
    same(s.texts, want, 'case ' + k + ' streamed text vs engine::llm');
    same(s.finish, wantFinish, 'case ' + k + ' streamed finish_reason');
    check(s.usage && s.usage.completion_tokens === r.usage.completion_tokens, 'case ' + k + ' streamed usage');
  }

  // A batch of prompts: one choice per prompt, in order, each as if sent alone.
  const batch = await client.completions.create({ model, prompt: [CASES[4].prompt, CASES[0].prompt],
    max_tokens: 20, temperature: 0, ignore_eos: true });
  same(batch.choices.map((x) => x.index), [0, 1], 'batch choice indexes');
  same(batch.choices[0].text, expected[4].samples[0].text, 'batch prompt 0 vs engine::llm');
  check(expected[0].samples[0].text.startsWith(batch.choices[1].text) && batch.choices[1].text.length > 0,
    'batch prompt 1 is not the start of the greedy continuation: ' + batch.choices[1].text);
  same(batch.usage.completion_tokens, 40, 'batch usage.completion_tokens');

  // Logprobs and echo on completions.
  const lp = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 5, temperature: 0,
    logprobs: 2 });
  const l = lp.choices[0].logprobs;
  check(l.tokens.length === 5 && l.token_logprobs.length === 5 && l.top_logprobs.length === 5 &&
    l.text_offset.length === 5, 'completion logprobs: ' + JSON.stringify(l));
  check(l.token_logprobs.every((x) => x <= 0) && Object.keys(l.top_logprobs[0]).length >= 1, 'logprob values');
  const echo = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 5, temperature: 0,
    echo: true });
  const rest = echo.choices[0].text.slice('Once upon a time'.length);
  check(echo.choices[0].text.startsWith('Once upon a time') && rest.length > 0 &&
    expected[0].samples[0].text.startsWith(rest), 'echo puts the prompt first: ' + echo.choices[0].text);

  // Chat: the template renders "user: ...\nassistant:" without special tokens; the answer equals a
  // completion of those token ids, streamed or not.
  const messages = [{ role: 'system', content: 'You tell stories.' }, { role: 'user', content: 'Tell me a story' }];
  const rendered = 'system: You tell stories.\nuser: Tell me a story\nassistant:';
  const ids = JSON.parse(execFileSync(troupe, ['tokenize', '--tokenizer', dir, '--text', rendered, '--no-special'],
    { encoding: 'utf8' }).trim().split('\n')[0]);
  const byIds = await client.completions.create({ model, prompt: ids, max_tokens: 30, temperature: 0 });
  const chat = await client.chat.completions.create({ model, messages, max_tokens: 30, temperature: 0 });
  check(chat.id.startsWith('chatcmpl-') && chat.object === 'chat.completion', 'chat head');
  same(chat.choices[0].message.role, 'assistant', 'chat role');
  same(chat.choices[0].message.content, byIds.choices[0].text, 'chat content vs completion of the rendered ids');
  same(chat.usage.prompt_tokens, ids.length, 'chat usage.prompt_tokens');
  const chatStream = await collect(await client.chat.completions.create({ model, messages,
    max_completion_tokens: 30, temperature: 0, stream: true, stream_options: { include_usage: true } }), true);
  same(chatStream.texts, [chat.choices[0].message.content], 'streamed chat content');
  same(chatStream.finish, [chat.choices[0].finish_reason], 'streamed chat finish_reason');
  check(chatStream.usage && chatStream.usage.total_tokens === chat.usage.total_tokens, 'streamed chat usage');
  const chatLp = await client.chat.completions.create({ model, messages, max_tokens: 6, temperature: 0,
    logprobs: true, top_logprobs: 3 });
  const content = chatLp.choices[0].logprobs.content;
  check(content.length === chatLp.usage.completion_tokens && content[0].top_logprobs.length === 3,
    'chat logprobs: ' + JSON.stringify(chatLp.choices[0].logprobs));
  const seeded = { model, messages, max_tokens: 20, temperature: 0.9, seed: 11, n: 2 };
  const a = await client.chat.completions.create(seeded);
  const b = await client.chat.completions.create(seeded);
  same(a.choices.map((x) => x.message.content), b.choices.map((x) => x.message.content), 'seeded chat repeats');

  // Errors through the client's typed errors.
  const expectError = async (what, status, fn) => {
    try {
      await fn();
    } catch (e) {
      check(e instanceof OpenAI.APIError, what + ': not an APIError: ' + e);
      check(e.status === status, what + ': status ' + e.status + ', expected ' + status);
      check(e.error && typeof e.error.message === 'string', what + ': no error message');
      return;
    }
    fail(what + ': no error');
  };
  await expectError('temperature out of range', 400,
    () => client.completions.create({ model, prompt: 'x', temperature: 5 }));
  await expectError('unknown model', 404, () => client.completions.create({ model: 'gpt-4', prompt: 'x' }));
  await expectError('prompt too long', 400,
    () => client.completions.create({ model, prompt: Array(600).fill(1), max_tokens: 1 }));
  const stranger = new OpenAI({ apiKey: 'wrong', baseURL: server.base + '/v1', maxRetries: 0 });
  await expectError('wrong API key', 401, () => stranger.models.list());

  await server.stop();
  console.log('openai client: ' + CASES.length + ' completion cases, chat, logprobs, echo and errors pass');
}

main().catch((e) => fail(e.stack || String(e)));
