#!/usr/bin/env python3
"""Fails when the modules of one crate import each other in a circle.

For every crate (crates/*/src, apps/*/src) it builds the graph "module A names
`crate::B`" from the code outside comments and test modules, and reports each strongly
connected component of more than one module. `--self-test` checks the checker on a
made-up crate with a cycle and one without.
"""
import os
import re
import sys
import tempfile


def modules(src):
    """Top-level module name -> its code (a directory module: all its files)."""
    out = {}
    for name in os.listdir(src):
        path = os.path.join(src, name)
        if name.endswith(".rs") and name not in ("lib.rs", "main.rs"):
            out[name[:-3]] = open(path, encoding="utf-8").read()
        elif os.path.isdir(path) and os.path.exists(os.path.join(path, "mod.rs")):
            text = ""
            for root, _, files in os.walk(path):
                for f in files:
                    if f.endswith(".rs"):
                        text += open(os.path.join(root, f), encoding="utf-8").read()
            out[name] = text
    return out


def graph(src):
    mods = modules(src)
    edges = {m: set() for m in mods}
    for m, text in mods.items():
        text = text.split("#[cfg(test)]")[0]
        text = "\n".join(l for l in text.split("\n") if not l.strip().startswith("//"))
        named = set(re.findall(r"crate::([a-z_][a-z0-9_]*)", text))
        for group in re.findall(r"use crate::\{([^}]*)\}", text):
            named |= set(re.findall(r"\b([a-z_][a-z0-9_]*)\b", group))
        edges[m] = {d for d in named if d in mods and d != m}
    return edges


def cycles(edges):
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def check(root):
    bad = []
    for parent in ("crates", "apps"):
        base = os.path.join(root, parent)
        for crate in sorted(os.listdir(base)):
            src = os.path.join(base, crate, "src")
            if os.path.isdir(src):
                for comp in cycles(graph(src)):
                    bad.append(f"{parent}/{crate}: {' <-> '.join(comp)}")
    return bad


def self_test():
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "crates", "c", "src")
        os.makedirs(src)
        os.makedirs(os.path.join(d, "apps"))
        files = {
            "a.rs": "use crate::b::X;\n",
            "b.rs": "// crate::a in a comment does not count\nuse crate::{c::Y};\n",
            "c.rs": "pub fn f() { crate::a::g() }\n",
            "d.rs": "use crate::a::Z;\n#[cfg(test)]\nmod tests { use crate::d; }\n",
        }
        for name, text in files.items():
            open(os.path.join(src, name), "w").write(text)
        found = check(d)
        assert found == ["crates/c: a <-> b <-> c"], found
        open(os.path.join(src, "c.rs"), "w").write("pub fn f() {}\n")
        assert check(d) == [], check(d)
    print("module_cycles self-test: ok")


if __name__ == "__main__":
    if "--self-test" in sys.argv:
        self_test()
        sys.exit(0)
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    problems = check(root)
    for p in problems:
        print(f"import cycle: {p}")
    if problems:
        sys.exit(1)
    print("no import cycles between the modules of any crate")
