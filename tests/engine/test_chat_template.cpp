// Unit tests of the chat-template interpreter: whitespace control, loops, filters, tests, operators,
// macros, errors with line numbers, and building the context from messages.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "engine/chat/chat_template.hpp"

using namespace troupe::engine::chat;

namespace {

// Renders `src` with the variables of the JSON object `ctx`; REQUIREs success.
std::string render(const std::string& src, const std::string& ctx = "{}") {
  auto t = chat_template::parse(src);
  INFO(src);
  if (!t) FAIL(t.error().message);
  auto c = value_from_json(ctx);
  REQUIRE(c);
  auto out = t->render(*c);
  if (!out) FAIL(out.error().message);
  return *out;
}

// The error of parsing or rendering `src`; FAILs when there is none.
std::string error_of(const std::string& src, const std::string& ctx = "{}") {
  auto t = chat_template::parse(src);
  if (!t) return t.error().message;
  auto out = t->render(*value_from_json(ctx));
  INFO(src);
  if (out) FAIL("rendered without an error: " + *out);
  return out.error().message;
}

}  // namespace

TEST_CASE("whitespace control: -, trim_blocks, lstrip_blocks, + and the trailing newline") {
  CHECK(render("a  {{- 'b' -}}  \n c") == "abc");
  CHECK(render("a {{ 'b' }} c") == "a b c");
  CHECK(render("{% if true %}\nx\n{% endif %}\ny") == "x\ny");
  CHECK(render("<\n    {% if true %}\n    x\n    {% endif %}\n>") == "<\n    x\n>");
  CHECK(render("a  {% if true %}x{% endif %}") == "a  x");
  CHECK(render("  {%+ if true %}x{% endif %}") == "  x");
  CHECK(render("{% if true +%}\nx{% endif %}") == "\nx");
  CHECK(render("{{ 'x' }}\n") == "x");
  CHECK(render("{{ 'x' }}\n\n") == "x\n");
  CHECK(render("a\n  {# note #}\nb") == "a\nb");
  CHECK(render("a {#- note -#} b") == "ab");
  CHECK(render("{% raw %}{{ x }}{% endraw %}") == "{{ x }}");
  CHECK(render("{{ 'x' }}\r\n{{ 'y' }}") == "x\ny");
  CHECK(render("{{- '\\n' -}}\n{%- if true -%}\n  z\n{%- endif -%}\n") == "\nz");
}

TEST_CASE("for loops: loop variables, filters, else, unpacking, break and continue") {
  CHECK(render("{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}"
                "{{ loop.length }}{{ loop.revindex }};{% endfor %}",
                R"({"xs": ["a", "b"]})") == "10TrueFalse22;21FalseTrue21;");
  CHECK(render("{% for x in xs %}{{ loop.previtem | default('-') }}{{ x }}{{ loop.nextitem | default('-') }} "
               "{% endfor %}", R"({"xs": [1, 2, 3]})") == "-12 123 23- ");
  CHECK(render("{% for x in xs if x > 1 %}{{ x }}/{{ loop.length }} {% endfor %}", R"({"xs": [1, 2, 3]})") ==
        "2/2 3/2 ");
  CHECK(render("{% for x in [] %}x{% else %}empty{% endfor %}") == "empty");
  CHECK(render("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", R"({"d": {"b": 1, "a": 2}})") ==
        "b=1;a=2;");
  CHECK(render("{% for k in d %}{{ k }}{% endfor %}", R"({"d": {"z": 1, "y": 2}})") == "zy");
  CHECK(render("{% for c in 'hé!' %}[{{ c }}]{% endfor %}") == "[h][é][!]");
  CHECK(render("{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}"
               "{% endif %}{{ x }}{% endfor %}") == "013");
  CHECK(render("{% for x in [1, 2] %}{% for y in 'ab' %}{{ loop.index }}{{ y }}{% endfor %}{{ loop.index }} "
               "{% endfor %}") == "1a2b1 1a2b2 ");
  CHECK(render("{% for x in undefined_thing %}x{% endfor %}") == "");
  CHECK(render("{% for x in xs %}{{ loop.cycle('odd', 'even') }} {% endfor %}", R"({"xs": [1, 2, 3]})") ==
        "odd even odd ");
}

TEST_CASE("set: scoping, tuples, namespaces and block set") {
  CHECK(render("{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{{ x }}{% endfor %}{{ x }}") == "21");
  CHECK(render("{% set ns = namespace(n=0, seen=false) %}{% for i in [1, 2, 3] %}{% set ns.n = ns.n + i %}"
               "{% endfor %}{{ ns.n }} {{ ns.seen }}") == "6 False");
  CHECK(render("{% set a, b = 1, 'x' %}{{ a }}{{ b }}") == "1x");
  CHECK(render("{% set s %}  hi {{ 'there' }}{% endset %}[{{ s | trim }}]") == "[hi there]");
  CHECK(render("{% set s | upper %}abc{% endset %}{{ s }}") == "ABC");
  CHECK(render("{% if true %}{% set y = 3 %}{% endif %}{{ y }}") == "3");
  CHECK(error_of("{% set d = {} %}{% set d.x = 1 %}").find("namespace") != std::string::npos);
}

TEST_CASE("printing values as Python does") {
  CHECK(render("{{ none }} {{ true }} {{ False }} {{ 1.0 }} {{ 0.1 }} {{ 1e20 }} {{ 3 }} [{{ nothing }}]") ==
        "None True False 1.0 0.1 1e+20 3 []");
  CHECK(render("{{ ['a', 1, none, \"it's\"] }}") == "['a', 1, None, \"it's\"]");
  CHECK(render("{{ {'k': [1.5, true]} }}") == "{'k': [1.5, True]}");
  CHECK(render("{{ 10 / 4 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 'ab' * 2 }}") ==
        "2.5 3 -4 2 1024 abab");
  CHECK(render("{{ 1 ~ 'a' ~ none }}") == "1aNone");
}

TEST_CASE("operators, tests, conditionals and subscripts") {
  CHECK(render("{{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'z' not in 'abc' }}") ==
        "True True True True");
  CHECK(render("{{ x is defined }} {{ y is undefined }} {{ n is none }} {{ n is not none }}",
               R"({"x": 1, "n": null})") == "True True True False");
  CHECK(render("{{ 's' is string }} {{ 1 is number }} {{ 1 is integer }} {{ 1.5 is float }} {{ {} is mapping }}"
               " {{ [] is iterable }} {{ 's' is sequence }} {{ true is boolean }} {{ false is false }}"
               " {{ 1 is true }}") == "True True True True True True True True True False");
  CHECK(render("{{ 3 is equalto 3 }} {{ 3 is eq(4) }} {{ 2 is in [1, 2] }} {{ 4 is divisibleby 2 }} {{ 3 is odd }}")
        == "True False True True True");
  CHECK(render("{{ 'yes' if x else 'no' }}{{ 'never' if false }}", R"({"x": [0]})") == "yes");
  CHECK(render("{{ x or 'd' }} {{ x and 'a' }} {{ not x }}", R"({"x": ""})") == "d  True");
  CHECK(render("{{ s[::-1] }} {{ s[1:] }} {{ s[:-1] }} {{ s[-1] }} {{ s[1:5:2] }}", R"({"s": "héllo"})") ==
        "olléh éllo héll o él");
  CHECK(render("{{ xs[::-1] }} {{ xs[-1] }} {{ xs[5] is undefined }} {{ xs[1:] | length }}", R"({"xs": [1, 2, 3]})")
        == "[3, 2, 1] 3 True 2");
  CHECK(render("{{ m['role'] }} {{ m.role }} {{ m.missing is defined }} {{ m.get('role') }} {{ m.get('x', 5) }}",
               R"({"m": {"role": "user"}})") == "user user False user 5");
  CHECK(render("{{ 1 < 2 and 'a' < 'b' and [1, 2] < [1, 3] and 2 >= 2.0 }}") == "True");
  CHECK(render("{{ 1 < 2 < 3 }} {{ 1 < 3 < 2 }} {{ 0 <= x <= 10 }} {{ 3 > 2 > 1 > 0 }}", R"({"x": 5})") ==
        "True False True True");
  CHECK(render("{{ (1 + 2) * 3 - -1 }} {{ 1 ~ 2 * 3 }} {{ 2 ** 3 ** 2 }}") == "10 16 64");
}

TEST_CASE("string methods") {
  CHECK(render("{{ '  a b  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '\\n\\na'.lstrip('\\n') }}|{{ 'a  '.rstrip() }}")
        == "a b|a|a|a");
  CHECK(render("{{ 'a</think>b</think>c'.split('</think>') }} {{ ' a  b '.split() }} {{ 'a,b,c'.split(',', 1) }}") ==
        "['a', 'b', 'c'] ['a', 'b'] ['a', 'b,c']");
  CHECK(render("{{ 'hello'.startswith('he') }} {{ 'hello'.endswith(('x', 'lo')) }} {{ 'Ab'.upper() }}"
               " {{ 'Ab'.lower() }} {{ 'hello world'.title() }} {{ 'aXb'.replace('X', '-') }}") ==
        "True True AB ab Hello World a-b");
  CHECK(render("{{ '{} and {name}'.format(1, name='x') }} {{ 'abc'.find('c') }} {{ ', '.join(['a', 'b']) }}") ==
        "1 and x 2 a, b");
  CHECK(render("{{ 'ÉCOLE'.lower() }} {{ 'élan'.upper() }} {{ 'élan'.capitalize() }}") == "école ÉLAN Élan");
}

TEST_CASE("filters") {
  CHECK(render("[{{ '  x \\n' | trim }}] {{ 'héllo' | length }} {{ [1, 2] | count }} {{ {'a': 1} | length }}") ==
        "[x] 5 2 1");
  CHECK(render("{{ d | tojson }}", R"({"d": {"a": [1, 2.5, "é\"\n"], "b": null, "c": true, "e": {}}})") ==
        R"({"a": [1, 2.5, "é\"\n"], "b": null, "c": true, "e": {}})");
  CHECK(render("{{ d | tojson(indent=2) }}", R"({"d": {"a": [1, {"b": []}]}})") ==
        "{\n  \"a\": [\n    1,\n    {\n      \"b\": []\n    }\n  ]\n}");
  CHECK(render("{{ d | tojson(sort_keys=true) }}", R"({"d": {"b": 1, "a": 2}})") == R"({"a": 2, "b": 1})");
  CHECK(render("{{ 'hello WORLD' | capitalize }} {{ 'hello-world foo' | title }} {{ 'a' | upper }}") ==
        "Hello world Hello-World Foo A");
  CHECK(render("{{ x | default('d') }} {{ '' | default('e', true) }} {{ none | default('n') }}") == "d e None");
  CHECK(render("{{ ['a', 'b'] | join(', ') }} {{ xs | join('-', attribute='n') }}", R"({"xs": [{"n": 1}, {"n": 2}]})")
        == "a, b 1-2");
  CHECK(render("{{ [3, 1] | first }} {{ [3, 1] | last }} {{ 'ab' | list }} {{ [] | first is undefined }}") ==
        "3 1 ['a', 'b'] True");
  const char* msgs = R"({"m": [{"role": "system", "c": 1}, {"role": "user", "c": 2}, {"role": "user", "c": 3}]})";
  CHECK(render("{{ m | map(attribute='role') | list }}", msgs) == "['system', 'user', 'user']");
  CHECK(render("{{ m | selectattr('role', 'equalto', 'user') | map(attribute='c') | list }}", msgs) == "[2, 3]");
  CHECK(render("{{ m | rejectattr('role', '==', 'user') | list | length }}", msgs) == "1");
  CHECK(render("{{ [1, 2, 3, 4] | select('odd') | list }} {{ [0, 1, 2] | reject | list }}"
               " {{ ['a', 'b'] | reject('equalto', 'a') | list }} {{ ['A'] | map('lower') | list }}") ==
        "[1, 3] [0] ['b'] ['a']");
  CHECK(render("{{ 1 | string }}{{ '42' | int + 1 }} {{ 'x' | int }} {{ '2.5' | float }} {{ 3.7 | int }}") ==
        "143 0 2.5 3");
  CHECK(render("{{ 'aaa' | replace('a', 'b', 2) }} {{ d | items | list }} {{ d | dictsort }}",
               R"({"d": {"b": 1, "a": 2}})") == "bba [('b', 1), ('a', 2)] [('a', 2), ('b', 1)]");
  CHECK(render("{{ 'a\\nb\\n\\nc' | indent(2) }}|{{ 'a\\nb' | indent(2, true) }}") == "a\n  b\n\n  c|  a\n  b");
  CHECK(render("{{ '<a>' | safe }} {{ '<a&\"' | e }}") == "<a> &lt;a&amp;&#34;");
  CHECK(render("{{ [3, 1, 2] | sort }} {{ [1, 1, 2] | unique | list }} {{ [1, 2] | sum }} {{ 2.567 | round(1) }}"
               " {{ [1, 2] | reverse | list }} {{ -3 | abs }} {{ [4, 2] | max }}") ==
        "[1, 2, 3] [1, 2] 3 2.6 [2, 1] 3 4");
  CHECK(render("{% filter upper %}abc{% endfilter %}") == "ABC");
}

TEST_CASE("printf-style formatting and with blocks") {
  CHECK(render("{{ '%s=%d (%.1f%%)' % ('n', 3, 99.44) }} {{ '%(a)s-%(b)03d' % {'a': 1, 'b': 2} }} {{ '%5s|%-3s|' % ('r', 'l') }}")
        == "n=3 (99.4%) 1-002     r|l  |");
  CHECK(render("{{ '%s' % [1, 2] }} {{ '%x %X %o %r' % (255, 255, 8, 'q') }} {{ '%s, %s' | format('a', 1) }}") ==
        "[1, 2] ff FF 10 'q' a, 1");
  CHECK(error_of("{{ '%s %s' % ('a',) }}") == "line 1: not enough arguments for format string");
  CHECK(error_of("{{ 'x' % 5 }}") == "line 1: not all arguments converted during string formatting");
  CHECK(render("{% set a = 1 %}{% with a = 2, b = a %}{{ a }}{{ b }}{% endwith %}{{ a }}") == "211");
  CHECK(render("{% with %}{% set q = 3 %}{{ q }}{% endwith %}[{{ q }}]") == "3[]");
}

TEST_CASE("macros and call blocks") {
  CHECK(render("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}"
               "{{ greet('a') }} {{ greet('b', '?') }} {{ greet(punct='.', name='c') }}") == "Hi a! Hi b? Hi c.");
  CHECK(render("{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}"
               "{% call wrap('b') %}bold{% endcall %}") == "<b>bold</b>");
  CHECK(render("{% set top = 'T' %}{% macro m() %}{{ top }}{% endmacro %}{% for i in [1] %}{{ m() }}{% endfor %}") ==
        "T");
  CHECK(render("{% for i in [1, 2] %}{% macro m() %}{{ i }}{% endmacro %}{{ m() }}{% endfor %}") == "12");
  CHECK(render("{% macro m() %}{{ x }}{{ i }}{% endmacro %}{% set x = 5 %}{% for i in [1] %}{{ m() }}{% endfor %}") ==
        "5");
  CHECK(error_of("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}").find("takes 1 arguments") != std::string::npos);
}

TEST_CASE("errors name the line and what is wrong") {
  CHECK(error_of("line one\n{{ raise_exception('Roles must alternate') }}") == "Roles must alternate");
  CHECK(error_of("a\nb\n{% if x %}\nno end") == "chat template: line 4: missing {% endif %} (the template ended)");
  CHECK(error_of("a\n{{ x | nosuchfilter }}") == "line 2: unknown filter 'nosuchfilter'");
  CHECK(error_of("\n\n{{ x is weird }}") == "line 3: unknown test 'weird'");
  CHECK(error_of("{% include 'other.j2' %}") == "chat template: line 1: unsupported tag '{% include %}'");
  CHECK(error_of("x\n\n{{ missing.attr }}") == "line 3: 'missing' is undefined (reading its attribute 'attr')");
  CHECK(error_of("{{ 'a' + 1 }}") == "line 1: unsupported operand types for +: 'string' and 'int'");
  CHECK(error_of("{{ (1 }}") == "chat template: line 1: unbalanced '}'");
  CHECK(error_of("{{ (1 + ) }}") == "chat template: line 1: expected an expression, found ')'");
  CHECK(error_of("\n{% endfor %}") == "chat template: line 2: unexpected '{% endfor %}'");
  CHECK(error_of("{{ 'abc }}").find("line 1: unterminated string") != std::string::npos);
  CHECK(error_of("{% for x in 5 %}{% endfor %}") == "line 1: cannot loop over int");
  CHECK(error_of("{{ xs.append(1) }}", R"({"xs": []})").find("cannot modify") != std::string::npos);
  CHECK(error_of("{{ 1 / 0 }}") == "line 1: division by zero");
  CHECK(error_of("{{ 'abc'.split('') }}") == "line 1: str.split: empty separator");
  CHECK(error_of("{{ 'x' * 1000000000000 }}") == "line 1: repetition is too large");
  CHECK(error_of("{{ 2 ** 100000000000 }}") == "line 1: integer overflow");
  CHECK(error_of("{{ 9223372036854775807 + 1 }}") == "line 1: integer overflow");
  CHECK(render("{{ 3 ** 4 }} {{ (-2) ** 3 }} {{ 1 ** 100000000000 }} {{ 2 ** -1 }}") == "81 -8 1 0.5");
  CHECK(error_of("{{ 'a' | indent(none) }}") == "line 1: indent width must be an integer or a string");
  CHECK(error_of("{{ 1.5 | round('x') }}") == "line 1: round precision must be an integer");
  CHECK(error_of("{{ '{99999999999}'.format(1) }}") == "line 1: str.format: no argument for {99999999999}");
  CHECK(error_of("{{ 1e300 | int }}") == "line 1: cannot convert 1e+300 to an integer");
  CHECK(error_of("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").find("macros nest too deeply") != std::string::npos);
  CHECK(error_of("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}").find("nest too deeply") !=
        std::string::npos);
  CHECK(error_of("{{ " + std::string(5000, '-') + "1 }}").find("nest too deeply") != std::string::npos);
  std::string deep_ifs;
  for (int i = 0; i < 2000; ++i) deep_ifs += "{% if true %}";
  CHECK(error_of(deep_ifs).find("nest too deeply") != std::string::npos);
  CHECK(error_of("{% for x in xs recursive %}{% endfor %}").find("recursive loops are not supported") != std::string::npos);
}

TEST_CASE("globals: range, namespace, strftime_now") {
  CHECK(render("{{ range(3) | list }} {{ range(1, 7, 2) | list }} {{ range(3, 0, -1) | list }}") ==
        "[0, 1, 2] [1, 3, 5] [3, 2, 1]");
  std::string year = render("{{ strftime_now('%Y') }}");
  CHECK(year.size() == 4);
  CHECK(year >= "2024");
}

TEST_CASE("apply_chat_template builds the context as transformers does") {
  auto t = chat_template::parse(
      "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{% if m.name is defined %}"
      "({{ m.name }}){% endif %}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
      "{{ tools is none }}{{ enable_thinking }}{{ eos_token }}");
  REQUIRE(t);
  CHECK_FALSE(t->takes_content_parts());
  std::vector<chat_message> msgs = {
      {"system", value("be brief"), value()},
      {"user", *value_from_json(R"([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}])"),
       *value_from_json(R"({"name": "bob"})")},
  };
  auto out = apply_chat_template(*t, msgs, true, "<s>", "</s>", *value_from_json(R"({"enable_thinking": false})"));
  REQUIRE(out);
  CHECK(*out == "<s><system>be brief<user>a\nb(bob)<assistant>TrueFalse</s>");
  auto with_image = apply_chat_template(
      *t, {{"user", *value_from_json(R"([{"type": "image_url", "image_url": {"url": "x"}}])"), value()}}, false, "",
      "");
  REQUIRE_FALSE(with_image);
  CHECK(with_image.error().message.find("image_url") != std::string::npos);

  auto parts = chat_template::parse(
      "{% for m in messages %}{% for p in m.content %}[{{ p.text }}]{% endfor %}{% endfor %}");
  REQUIRE(parts);
  CHECK(parts->takes_content_parts());
  auto out2 = apply_chat_template(*parts, {{"user", *value_from_json(R"([{"type": "text", "text": "x"}])"), value()}},
                                  false, "", "");
  REQUIRE(out2);
  CHECK(*out2 == "[x]");

  for (const char* src : {"{{ messages[0]['content'][0]['text'] }}",
                          "{{ messages[0].content | selectattr('type', 'equalto', 'text') | list | length }}",
                          "{% set c = messages[0]['content'] | map(attribute='text') | join %}{{ c }}"}) {
    auto p = chat_template::parse(src);
    REQUIRE(p);
    CHECK(p->takes_content_parts());
  }
  for (const char* src : {"{{ messages[0]['content'] | trim }}", "{{ messages[0].content[1:] }}",
                          "{% for m in messages %}{{ m.content.split(',')[0] }}{% endfor %}"}) {
    auto p = chat_template::parse(src);
    REQUIRE(p);
    CHECK_FALSE(p->takes_content_parts());
  }
}

TEST_CASE("value_from_json keeps key order and types") {
  auto v = value_from_json(R"({"z": 1, "a": [1.0, "s", null, false], "m": {}})");
  REQUIRE(v);
  CHECK(v->str() == "{'z': 1, 'a': [1.0, 's', None, False], 'm': {}}");
  CHECK_FALSE(value_from_json("{bad"));
}

TEST_CASE("Llama 3.1's template with builtin tools (reject filter, items, ipython role)") {
  std::ifstream in(std::string(TROUPE_SOURCE_DIR) + "/tests/tooling/chat_templates/llama3_1_tools.jinja");
  std::stringstream src;
  src << in.rdbuf();
  auto t = chat_template::parse(src.str());
  REQUIRE(t);
  std::vector<chat_message> msgs = {
      {"user", value("search it"), value()},
      {"assistant", value::none(),
       *value_from_json(R"({"tool_calls": [{"id": "c1", "type": "function",
                           "function": {"name": "brave_search", "arguments": {"query": "news"}}}]})")},
      {"ipython", value("headlines"), value()},
  };
  auto out = apply_chat_template(*t, msgs, true, "<|begin_of_text|>", "<|eot_id|>",
                                 *value_from_json(R"({"builtin_tools": ["brave_search", "code_interpreter"]})"));
  REQUIRE(out);
  CHECK(*out ==
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\nTools: brave_search\n\n"
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nsearch it<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n<|python_tag|>brave_search.call(query=\"news\")<|eom_id|>"
        "<|start_header_id|>ipython<|end_header_id|>\n\n\"headlines\"<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST_CASE("Python behaviours that @huggingface/jinja lacks") {
  CHECK(render("{{ 'xxhixx'.strip('x') }} {{ 'hello WORLD' | capitalize }} {{ true }} {{ 'a' < 'b' }}") ==
        "hi Hello world True True");
  CHECK(render("{{ 3 is eq(3) }} {{ '=' * 3 }} {{ [1] * 2 }} {{ 'ab' | list }} {{ [1, 2, 3] | select('odd') | list }}") ==
        "True === [1, 1] ['a', 'b'] [1, 3]");
}

TEST_CASE("one parsed template renders from several threads at once") {
  auto t = chat_template::parse(
      "{% set ns = namespace(n=0) %}{% macro m(x) %}<{{ x | upper }}>{% endmacro %}"
      "{% for msg in messages %}{% set ns.n = ns.n + 1 %}{{ m(msg.content) }}{% endfor %}{{ ns.n }}");
  REQUIRE(t);
  std::vector<std::string> outs(4);
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k)
    threads.emplace_back([&, k] {
      std::vector<chat_message> msgs;
      for (int i = 0; i <= k; ++i) msgs.push_back({"user", value("t" + std::to_string(k)), value()});
      for (int rep = 0; rep < 300; ++rep) {
        auto out = apply_chat_template(*t, msgs, false, "", "");
        std::string got = out ? *out : out.error().message;
        if (rep > 0 && got != outs[size_t(k)]) got = "changed: " + got;
        outs[size_t(k)] = got;
      }
    });
  for (auto& th : threads) th.join();
  CHECK(outs[0] == "<T0>1");
  CHECK(outs[1] == "<T1><T1>2");
  CHECK(outs[3] == "<T3><T3><T3><T3>4");
}

TEST_CASE("load_chat_template reads the tokenizer settings") {
  troupe::config::tokenizer_settings settings;
  auto none = load_chat_template(settings);
  REQUIRE_FALSE(none);
  CHECK(none.error().message.find("has no chat template") != std::string::npos);
  settings.chat_template = "{% for m in messages %}{{ m.content }}{% endfor %}";
  auto ok = load_chat_template(settings);
  REQUIRE(ok);
  auto out = apply_chat_template(*ok, {{"user", value("hi"), value()}}, false, "", "");
  REQUIRE(out);
  CHECK(*out == "hi");
  settings.chat_template = "{% for m in messages %}";
  auto bad = load_chat_template(settings);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message == "chat template: line 1: missing {% endfor %} (the template ended)");
}

TEST_CASE("messages_from_value converts OpenAI-style messages") {
  auto msgs = messages_from_value(*value_from_json(
      R"([{"role": "system", "content": "s"}, {"role": "user", "content": [{"type": "text", "text": "t"}]},
          {"role": "assistant", "content": null, "tool_calls": [{"id": "1"}]}, {"role": "tool", "tool_call_id": "1"}])"));
  REQUIRE(msgs);
  REQUIRE(msgs->size() == 4);
  CHECK((*msgs)[0].role == "system");
  CHECK((*msgs)[1].content.is_list());
  CHECK((*msgs)[2].content.is_none());
  CHECK((*msgs)[2].fields.str() == "{'tool_calls': [{'id': '1'}]}");
  CHECK((*msgs)[3].content.is_undefined());
  auto t = chat_template::parse("{% for m in messages %}{{ m.content is defined }}{{ m.content is none }} {% endfor %}");
  REQUIRE(t);
  auto out = apply_chat_template(*t, *msgs, false, "", "");
  REQUIRE(out);
  CHECK(*out == "TrueFalse TrueFalse TrueTrue FalseFalse ");
  CHECK(messages_from_value(*value_from_json(R"([{"content": "x"}])")).error().message ==
        "messages[0].role must be a string");
  CHECK(messages_from_value(*value_from_json(R"([{"role": "user"}, {"role": "user", "content": 5}])")).error().message ==
        "messages[1].content must be a string, a list of content parts or null");
  CHECK(messages_from_value(*value_from_json(R"({"role": "user"})")).error().message == "messages must be a list");
}
