#!/usr/bin/env python3
"""Module import graph of a crate, and the cycles in it.

Usage: scripts/module-graph.py [crate src folder, default crates/common/src] [--dot]

Reads every `.rs` file under the folder, drops comments and the `#[cfg(test)]` modules at the
end of files, and collects the `crate::a::b` and `super::x` paths each file names (in `use`
lines and inline). Two graphs are checked:
  1. the crate's top-level modules (a folder module and its files are one node);
  2. inside each folder module, its files except `mod.rs` (the folder's facade, which
     re-exports its children; a child naming an item of the folder through `super::` counts
     as naming the facade and is left out).
Prints the edges of both and every cycle; exits 1 when there is a cycle. `--dot` prints
graph 1 in Graphviz form instead.
"""
import os
import re
import sys


def module_path(src, path):
    rel = os.path.relpath(path, src)[: -len(".rs")].split(os.sep)
    if rel[-1] in ("mod", "lib"):
        rel = rel[:-1]
    return tuple(rel)


def code_of(text):
    # The unit tests of a file come last, in `#[cfg(test)] mod tests { ... }`.
    m = re.search(r"^#\[cfg\(test\)\]\s*\n\s*mod tests\b", text, re.M)
    if m:
        text = text[: m.start()]
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line.split("//", 1)[0] if '"' not in line else line for line in text.splitlines()
                     if not line.lstrip().startswith("//"))


def expand_use(code):
    """`use a::{b, c::{d}}` → a::b, a::c::d, plus every inline path."""
    paths = []
    for m in re.finditer(r"\buse\s+([^;]+);", code, re.S):
        paths += flatten(re.sub(r"\s+", "", m.group(1)))
    paths += re.findall(r"\b((?:crate|super)(?:::\w+)+)", code)
    return paths


def flatten(tree, prefix=""):
    if "{" not in tree:
        return [p for p in (prefix + t for t in split_top(tree)) if p]
    i = tree.index("{")
    head, body = tree[:i], tree[i + 1 : tree.rindex("}")]
    out = []
    for part in split_top(body):
        out += flatten(part, prefix + head)
    return out


def split_top(s):
    parts, depth, cur = [], 0, ""
    for ch in s:
        depth += ch == "{"
        depth -= ch == "}"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p for p in parts if p]


def resolve(path, here, modules):
    parts = path.split("::")
    if parts[0] == "crate":
        base, rest = (), parts[1:]
    else:
        # Each `super` is one module up from the file's own module.
        base, rest = here, parts
        while rest and rest[0] == "super":
            base, rest = base[:-1], rest[1:]
    target = base
    for p in rest:
        if target + (p,) in modules:
            target = target + (p,)
        else:
            break
    return target


def cycles(edges):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]
    nodes = set(edges) | {b for bs in edges.values() for b in bs}

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
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
                out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    src = args[0] if args else "crates/common/src"
    files = {}
    for root, _, names in os.walk(src):
        for name in names:
            if name.endswith(".rs") and name != "tests.rs":
                path = os.path.join(root, name)
                files[path] = module_path(src, path)
    modules = set(files.values())
    top, inner = {}, {}
    for path, here in sorted(files.items()):
        is_mod = os.path.basename(path) in ("mod.rs", "lib.rs")
        for p in expand_use(code_of(open(path).read())):
            target = resolve(p, here, modules)
            if not target or not here:
                continue
            if target[0] != here[0]:
                top.setdefault(here[0], set()).add(target[0])
            elif len(here) == 2 and not is_mod and len(target) >= 2 and target[:2] != here:
                folder = here[0]
                inner.setdefault(folder, {}).setdefault(here[1], set()).add(target[1])
    if "--dot" in sys.argv:
        print("digraph common {")
        for a in sorted(top):
            for b in sorted(top[a]):
                print(f'  "{a}" -> "{b}";')
        print("}")
        return 0
    bad = 0
    print(f"== top-level modules of {src}")
    for a in sorted(top):
        print(f"{a} -> {', '.join(sorted(top[a]))}")
    for c in cycles(top):
        print("CYCLE:", " <-> ".join(c))
        bad = 1
    for folder in sorted(inner):
        print(f"== files of {folder}/")
        for a in sorted(inner[folder]):
            print(f"{folder}/{a} -> {', '.join(sorted(inner[folder][a]))}")
        for c in cycles(inner[folder]):
            print(f"CYCLE in {folder}/:", " <-> ".join(c))
            bad = 1
    print("no cycle" if not bad else "cycles found")
    return bad


if __name__ == "__main__":
    sys.exit(main())
