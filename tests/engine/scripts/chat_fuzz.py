#!/usr/bin/env python3
# Differential fuzzing of troupe's chat templates against Python's Jinja2 (transformers' configuration):
# writes random templates (expressions, filters, tests, methods, loops, whitespace control) and
# Jinja2's output or error for each, in the case format of chat_parity_check.
# usage: chat_fuzz.py SEED COUNT OUT_DIR
import copy
import json
import os
import random
import sys

import jinja2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chat_python_reference import environment  # noqa: E402

CONTEXT = {
    "n": 7, "m": -3, "f": 2.5, "s": "  Héllo, Wörld!  ", "e": "", "xs": [3, 1, 2], "ys": ["b", "A", "c"],
    "d": {"b": 1, "a": "x", "c": [1, 2]},
    "msgs": [{"role": "user", "content": "hi <think>x</think> there"}, {"role": "assistant", "content": " yo \n"}],
    "nothing": None, "t": True, "no": False, "empty": [],
}
NAMES = list(CONTEXT) + ["undef"]
STRINGS = ["'a'", "'abc'", "''", "' x '", "'é'", "'a,b'", "'<think>'", "'\\n'", "\"q'\"", "'A b C'", "'%s'",
           "'%d|%5.1f'", "'%(a)s'", "'%x %r'"]
FILTERS = ["trim", "length", "tojson", "upper", "lower", "capitalize", "title", "default('D')", "join(',')", "first",
           "last", "list", "string", "int", "float", "dictsort", "sort", "sum", "abs", "round", "count",
           "replace('a', 'Z')", "e", "tojson(indent=1)", "min", "max"]
# Filters that return generators or iterators in Python: applied to lists and materialised with | list.
LAZY_FILTERS = ["map(attribute='role')", "selectattr('role', 'equalto', 'user')", "reject('none')", "select('odd')",
                "unique", "reverse"]
TESTS = ["defined", "undefined", "none", "string", "number", "mapping", "iterable", "sequence", "boolean", "integer",
         "float", "true", "false", "odd", "even", "eq(3)", "in(xs)", "lower", "upper"]
METHODS = ["strip()", "lstrip()", "rstrip()", "split()", "split(',')", "startswith('a')", "endswith('!')", "upper()",
           "lower()", "replace('l', 'L')", "title()", "find('l')", "strip(' H')", "count('l')", "capitalize()",
           "get('a')", "index(1)"]
OPS = ["+", "-", "*", "/", "//", "%", "~", "==", "!=", "<", ">", "<=", ">=", "in", "not in", "and", "or"]
# Python objects whose printed form has no template equivalent (lazy views and iterators).
UNPRINTABLE = ("<generator object", "dict_keys", "dict_values", "dict_items", "reversed", "reverseiterator")


class generator:
    def __init__(self, seed):
        self.rng = random.Random(seed)

    def literal(self):
        r = self.rng
        c = r.randrange(8)
        if c == 0:
            return str(r.randrange(-5, 10))
        if c == 1:
            return r.choice(["0.5", "1.0", "2.25", "-1.5", "3.0"])
        if c == 2:
            return r.choice(STRINGS)
        if c == 3:
            return r.choice(["none", "true", "false"])
        if c == 4:
            return "[" + ", ".join(self.literal() for _ in range(r.randrange(3))) + "]"
        if c == 5:
            return "{" + ", ".join(f"'{k}': {self.literal()}" for k in r.sample("abc", r.randrange(3))) + "}"
        return r.choice(NAMES)

    def expr(self, depth=0):
        r = self.rng
        if depth > 3:
            return self.literal()
        c = r.randrange(10)
        if c < 3:
            return self.literal()
        if c == 3:
            return f"({self.expr(depth + 1)} {r.choice(OPS)} {self.expr(depth + 1)})"
        if c == 4:
            if r.random() < 0.25:
                return f"({r.choice(['xs', 'ys', 'msgs', 'empty'])} | {r.choice(LAZY_FILTERS)} | list)"
            return f"({self.expr(depth + 1)} | {r.choice(FILTERS)})"
        if c == 5:
            return f"({self.expr(depth + 1)} is {'not ' if r.random() < 0.3 else ''}{r.choice(TESTS)})"
        if c == 6:
            return f"{r.choice(NAMES)}.{r.choice(METHODS)}"
        if c == 7:
            return f"({self.expr(depth + 1)} if {self.expr(depth + 1)} else {self.expr(depth + 1)})"
        if c == 8:
            seq = r.choice(["xs", "s", "msgs", "ys", "e"])
            return f"{seq}[{r.choice(['0', '-1', '1:', '::-1', ':2', '5', '-2:'])}]"
        return f"(not {self.expr(depth + 1)})"

    def stmt(self, depth=0):
        r = self.rng
        c = r.randrange(12)

        def ws():
            return r.choice(["", "-"])
        if depth > 2 or c < 2:
            return "{{" + ws() + " " + self.expr() + " " + ws() + "}}" + r.choice(["", " ", "\n", "\n  ", "|"])
        if c == 2:
            return (f"{{%{ws()} if {self.expr()} {ws()}%}}\n  {self.stmt(depth + 1)}{{% else %}}"
                    f"{self.stmt(depth + 1)}\n{{% endif %}}")
        if c == 3:
            seq = r.choice(["xs", "ys", "msgs", "d", "s", "empty", "undef"])
            return (f"{{% for x in {seq} {r.choice(['', 'if x'])} %}}\n    {{{{ loop.index }}}}{{{{ x }}}}"
                    f"{self.stmt(depth + 1)}\n{{% endfor %}}")
        if c == 4:
            if r.random() < 0.3:
                return f"{{% with v = {self.expr()} %}}{{{{ v }}}}{self.stmt(depth + 1)}{{% endwith %}}"
            return f"{{% set v = {self.expr()} %}}{{{{ v }}}}"
        if c == 5:
            return f"  {{#{ws()} c {ws()}#}}\n{self.stmt(depth + 1)}"
        if c == 6:
            body = r.choice(["{{ loop.index0 }}{{ loop.revindex }}{{ loop.first }}{{ loop.last }}{{ loop.length }}",
                             "{% if loop.first %}{% continue %}{% endif %}{{ x }}",
                             "{% if x == 1 %}{% break %}{% endif %}{{ x }}", "{{ loop.previtem }}/{{ loop.nextitem }}"])
            return f"{{%- for x in {r.choice(['xs', 'ys', 'msgs', 'empty'])} -%}}\n  {body}\n{{%- endfor %}}"
        if c == 7:
            return (f"{{% if {self.expr()} %}}a{{% elif {self.expr()} %}}\n  b\n{{% elif {self.expr()} %}}c"
                    f"{{% else %}}{self.stmt(depth + 1)}{{% endif %}}\n")
        if c == 8:
            return (f"{{% set ns = namespace(k={self.literal()}) %}}{{% for x in xs %}}{{% set ns.k = {self.expr()} %}}"
                    f"{{% endfor %}}{{{{ ns.k }}}}")
        if c == 9:
            return (f"{{% macro mc(a, b={self.literal()}) -%}}\n  [{{{{ a }}}}|{{{{ b }}}}]\n{{%- endmacro %}}"
                    f"{{{{ mc({self.expr()}) }}}}{{{{ mc(b={self.expr()}, a=1) }}}}")
        if c == 10:
            indent, left, right = r.choice(["  ", "\t", " x "]), r.choice(["", "-", "+"]), r.choice(["", "-", "+"])
            return f"{indent}{{%{left} if {self.expr()} {right}%}}\n{self.stmt(depth + 1)}  {{% endif %}}\n"
        return self.stmt(depth + 1) + self.stmt(depth + 1)


def main():
    seed, count, out_dir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    gen, env = generator(seed), environment()
    os.makedirs(out_dir, exist_ok=True)
    sources, cases = {}, []
    for i in range(count):
        src = "".join(gen.stmt() for _ in range(gen.rng.randrange(1, 4)))
        key = f"fuzz {seed}/{i}"
        case = dict(id=key + ": " + src.replace("\n", "\\n")[:300], template=key, messages=[],
                    add_generation_prompt=False, bos="", eos="", extra=CONTEXT)
        try:
            case["expected"] = env.from_string(src).render(messages=[], tools=None, documents=None,
                                                           add_generation_prompt=False, bos_token="", eos_token="",
                                                           **copy.deepcopy(CONTEXT))
        except (jinja2.exceptions.TemplateSyntaxError, jinja2.exceptions.SecurityError):
            continue
        except Exception as ex:  # troupe must fail too; the message may differ
            case["error"] = f"{type(ex).__name__}: {ex}"
            case["raised"] = False
        if any(w in case.get("expected", "") for w in UNPRINTABLE):
            continue
        sources[key] = src
        cases.append(case)
    with open(os.path.join(out_dir, "chat_templates.json"), "w", encoding="utf-8") as f:
        json.dump(sources, f, ensure_ascii=False)
    with open(os.path.join(out_dir, "chat_cases.jsonl"), "w", encoding="utf-8") as f:
        for c in cases:
            f.write(json.dumps(c, ensure_ascii=False) + "\n")
    print(f"fuzz seed {seed}: {len(cases)} random templates ({sum('error' in c for c in cases)} errors in Python)")


if __name__ == "__main__":
    main()
