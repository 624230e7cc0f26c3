#!/usr/bin/env python3
# Re-renders the chat-template parity cases (written by tests/tooling/chat_render.js) with Python's
# Jinja2 configured exactly as transformers configures it, so that troupe is checked against the
# renderer models are actually served with, beside @huggingface/jinja.
# It adds the one-feature snippets of tests/tooling/chat_snippets_python.json, which only Python renders.
# usage: chat_python_reference.py TEMPLATES.json CASES.jsonl SNIPPETS.json OUT_DIR
import json
import os
import sys
from datetime import datetime

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(fmt):
    return datetime.now().strftime(fmt)


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def flatten(messages):
    out = []
    for m in messages:
        if isinstance(m.get("content"), list):
            m = dict(m, content="\n".join(p["text"] for p in m["content"] if p.get("type") == "text"))
        out.append(m)
    return out


def main():
    templates_path, cases_path, snippets_path, out_dir = sys.argv[1:5]
    env = environment()
    sources = json.load(open(templates_path, encoding="utf-8"))
    extra = json.load(open(snippets_path, encoding="utf-8"))
    cases = [json.loads(line) for line in open(cases_path, encoding="utf-8")]
    for name, source in extra["snippets"]:
        key = "python snippet: " + name
        sources[key] = source
        cases.append(dict(id=key, template=key, messages=[], add_generation_prompt=False, bos="", eos="",
                          extra=extra["context"]))
    json.dump(sources, open(os.path.join(out_dir, "chat_templates.json"), "w", encoding="utf-8"), ensure_ascii=False)
    compiled = {name: env.from_string(src) for name, src in sources.items()}
    rendered = errors = 0
    with open(os.path.join(out_dir, "chat_cases.jsonl"), "w", encoding="utf-8") as out:
        for case in cases:
            name = case["template"]
            parts = name in ("content_parts", "mistral_small_parts")
            ctx = dict(messages=case["messages"] if parts else flatten(case["messages"]), tools=None, documents=None,
                       add_generation_prompt=case["add_generation_prompt"], bos_token=case["bos"],
                       eos_token=case["eos"])
            ctx.update(case["extra"])
            case.pop("expected", None)
            case.pop("error", None)
            case.pop("raised", None)
            try:
                case["expected"] = compiled[name].render(**ctx)
            except jinja2.exceptions.TemplateError as e:
                case["error"] = str(e)
                case["raised"] = type(e) is jinja2.exceptions.TemplateError
                errors += 1
            except Exception as e:  # TypeError and friends: troupe must fail too
                case["error"] = f"{type(e).__name__}: {e}"
                case["raised"] = False
                errors += 1
            rendered += 1
            out.write(json.dumps(case, ensure_ascii=False) + "\n")
    print(f"python jinja2 {jinja2.__version__}: rendered {rendered} cases ({errors} errors)")


if __name__ == "__main__":
    main()
