// Conversations for the chat-template parity test (tests/tooling/chat_render.js): system prompts or
// not, multi-turn, text parts, unicode, quotes and newlines, role-alternation errors, thinking and tools.
'use strict';

const u = (content, more) => ({ role: 'user', content, ...more });
const a = (content, more) => ({ role: 'assistant', content, ...more });
const s = (content) => ({ role: 'system', content });
const text = (...parts) => parts.map((t) => ({ type: 'text', text: t }));

const weather = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Get the current weather in a city',
    parameters: {
      type: 'object',
      properties: {
        city: { type: 'string', description: 'The city, e.g. "Paris"' },
        unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
        days: { type: 'integer', minimum: 1 },
        details: { type: 'array', items: { type: 'string' } },
      },
      required: ['city'],
    },
  },
};
const search = {
  type: 'function',
  function: { name: 'search', description: 'Search the wéb', parameters: { type: 'object', properties: { q: { type: 'string' } } } },
};
const call = (id, name, args) => ({ id, type: 'function', function: { name, arguments: args } });

// Plain conversations: every template renders them (or raises the same error).
const plain = [
  { name: 'single user', messages: [u('Hello!')] },
  { name: 'system and user', messages: [s('You are a helpful assistant.'), u('What is 2+2?')] },
  { name: 'two turns', messages: [u('Hi'), a('Hello! How can I help?'), u('Tell me a joke.')] },
  { name: 'system two turns', messages: [s('Be terse.'), u('Hi'), a('Hi.'), u('Bye')] },
  { name: 'ends with assistant', messages: [u('Say yes'), a('Yes')] },
  { name: 'system ends with assistant', messages: [s('sys'), u('q'), a('a')] },
  { name: 'long conversation', messages: [s('Count.'), ...Array.from({ length: 8 }, (_, i) => [u(`n=${i}`), a(`${i + 1}`)]).flat(), u('next')] },
  { name: 'unicode', messages: [u('Grüße aus Köln! 你好，世界 🌍🚀 مرحبا שלום ñ')] },
  { name: 'unicode system', messages: [s('Réponds en français. 日本語も OK'), u('Ça va ? 👍')] },
  { name: 'quotes', messages: [u('He said "hi" and it\'s \'fine\' — `code`')] },
  { name: 'newlines', messages: [u('line one\nline two\n\nline four'), a('ok\n'), u('\n\nleading newlines')] },
  { name: 'backslashes and braces', messages: [u('a\\nb \\ {{ not a tag }} {% nor this %} {# nor #}')] },
  { name: 'json in content', messages: [u('{"key": [1, 2, {"x": null}]}')] },
  { name: 'surrounding spaces', messages: [s('  padded system  '), u('   padded user   '), a('  padded assistant  '), u('\t tab')] },
  { name: 'empty user content', messages: [u('')] },
  { name: 'empty assistant content', messages: [u('hi'), a(''), u('again')] },
  { name: 'special tokens in content', messages: [u('<s>[INST] <|eot_id|> <|im_start|> </s>')] },
  { name: 'think tags in user', messages: [u('<think>not a thought</think> really')] },
  { name: 'text parts', messages: [u(text('Describe'))] },
  { name: 'several text parts', messages: [u(text('First part.', 'Second part.'))] },
  { name: 'text parts with system', messages: [s('sys'), u(text('a', 'b', 'c')), a('reply'), u(text(' spaced '))] },
  { name: 'text parts unicode', messages: [u(text('🌍', 'é\n"q"'))] },
  { name: 'user user (alternation error)', messages: [u('one'), u('two')] },
  { name: 'assistant first (alternation error)', messages: [a('I start'), u('hm')] },
  { name: 'system only', messages: [s('Just a system prompt')] },
  { name: 'system in the middle', messages: [u('hi'), s('late system'), u('hello')] },
  { name: 'two system messages', messages: [s('first'), s('second'), u('q')] },
  { name: 'assistant assistant', messages: [u('q'), a('a1'), a('a2')] },
  { name: 'very long content', messages: [u('word '.repeat(2000))] },
  { name: 'many short turns', messages: Array.from({ length: 12 }, (_, i) => (i % 2 ? a(`a${i}`) : u(`u${i}`))) },
  { name: 'name field', messages: [u('hi', { name: 'alice' }), a('hello alice')] },
  { name: 'tab and carriage return', messages: [u('col1\tcol2\r\nrow2')] },
  { name: 'percent and tilde', messages: [u('100% ~ 50% {} %s %d')] },
];

// Conversations for templates that know about thinking (Qwen3).
const thinking = [
  { name: 'assistant with think', messages: [u('2+2?'), a('<think>\nadd them\n</think>\n\n4'), u('3+3?')] },
  { name: 'last assistant with think', messages: [u('2+2?'), a('<think>\nadd\n</think>\n\n4')] },
  { name: 'reasoning_content field', messages: [u('q'), a('answer', { reasoning_content: 'because' })] },
  { name: 'enable_thinking false', messages: [u('quick')], extra: { enable_thinking: false } },
  { name: 'enable_thinking true', messages: [u('slow')], extra: { enable_thinking: true } },
];

// Conversations with tools, for the templates that render them.
const tools = [
  { name: 'tools offered', messages: [s('You can call tools.'), u('Weather in Paris?')], extra: { tools: [weather, search] } },
  { name: 'tools no system', messages: [u('Weather in Oslo?')], extra: { tools: [weather] } },
  {
    name: 'tool call and result',
    messages: [
      u('Weather in Paris?'),
      a(null, { tool_calls: [call('call00001', 'get_weather', { city: 'Paris', unit: 'celsius', days: 2 })] }),
      { role: 'tool', content: '{"temp": 21.5, "sky": "clear"}', tool_call_id: 'call00001' },
      a('It is 21.5 °C and clear.'),
      u('Thanks!'),
    ],
    extra: { tools: [weather] },
  },
  {
    name: 'tool call with empty content',
    messages: [
      u('Search for "jinja"'),
      a('', { tool_calls: [call('abcdefghi', 'search', { q: 'jinja "templates"' })] }),
      { role: 'tool', content: 'results: ...', tool_call_id: 'abcdefghi' },
    ],
    extra: { tools: [search] },
  },
  {
    name: 'two tool results',
    messages: [
      u('Compare Paris and Rome'),
      a('Let me check.', { tool_calls: [call('call00002', 'get_weather', { city: 'Paris' }), call('call00003', 'get_weather', { city: 'Rome' })] }),
      { role: 'tool', content: 'sunny', tool_call_id: 'call00002' },
      { role: 'tool', content: 'rainy', tool_call_id: 'call00003' },
    ],
    extra: { tools: [weather] },
  },
  {
    name: 'bad tool call id (error)',
    messages: [u('x'), a(null, { tool_calls: [call('short', 'search', { q: 'x' })] }), { role: 'tool', content: 'r', tool_call_id: 'short' }],
    extra: { tools: [search] },
  },
  { name: 'tools in system (llama extra)', messages: [s('sys'), u('weather?')], extra: { tools: [weather], tools_in_user_message: false, date_string: '01 Jan 2025' } },
];

// Conversations with non-text parts, for templates that take content parts.
const image = (url) => ({ type: 'image_url', image_url: { url } });
const parts = [
  { name: 'image and text', messages: [u([...text('What is in this picture?'), image('http://x/cat.png')])] },
  { name: 'system parts and image first', messages: [s(text('Look closely.')), u([image('data:,a'), ...text('and this?', 'and that?')]), a(text('A cat.')), u('thanks')] },
  { name: 'unknown part type (error)', messages: [u([{ type: 'audio', audio: 'x' }])] },
];

module.exports = { plain, thinking, tools, parts };
