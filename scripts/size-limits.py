#!/usr/bin/env python3
"""Files over 800 lines and functions over 80 lines in the workspace's Rust code.

Usage: scripts/size-limits.py [--max-file N] [--max-fn N]

Left out: tests (`tests.rs`, `tests/` folders, `benches/`, the `#[cfg(test)] mod tests` at the
end of a file), generated code (`target/`, `build.rs` output) and `bins/recorder` (split
separately). A function's length runs from its `fn` line to its closing brace at the same
indentation, doc comments not counted. Lists what is over, and the ones kept longer on purpose
(KEPT below, each with its reason); exits 1 when anything else is over.
"""
import os
import re
import sys

SKIP_DIRS = {"target", ".git", ".venv", "node_modules", "tests", "benches", "fuzz"}
SKIP_PREFIXES = ("bins/recorder/",)
# path or path:function -> why it stays longer.
KEPT = {}


def rust_files(root):
    for base, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(names):
            path = os.path.relpath(os.path.join(base, name), root)
            if name.endswith(".rs") and name != "tests.rs" and not path.startswith(SKIP_PREFIXES):
                yield path


def code_lines(text):
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("#[cfg(test)]") and i + 1 < len(lines) and re.match(r"\s*mod tests\b", lines[i + 1]):
            return lines[:i]
    return lines


FN = re.compile(r"^(\s*)(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?(?:extern\s+\"C\"\s+)?fn\s+(\w+)")


def long_functions(lines, limit):
    for i, line in enumerate(lines):
        m = FN.match(line)
        if not m:
            continue
        indent = m.group(1)
        # A declaration without a body (trait method) ends with `;` before any `{`.
        j = i
        while j < len(lines) and "{" not in lines[j] and not lines[j].rstrip().endswith(";"):
            j += 1
        if j >= len(lines) or "{" not in lines[j]:
            continue
        if lines[j].rstrip().endswith("}") and j == i:
            continue
        end = j
        while end < len(lines) and not (lines[end].startswith(indent + "}") and end > i):
            end += 1
        length = end - i + 1
        if length > limit:
            yield m.group(2), i + 1, length


def main():
    max_file = int(sys.argv[sys.argv.index("--max-file") + 1]) if "--max-file" in sys.argv else 800
    max_fn = int(sys.argv[sys.argv.index("--max-fn") + 1]) if "--max-fn" in sys.argv else 80
    over = kept = 0
    for path in rust_files("."):
        lines = code_lines(open(path, encoding="utf-8").read())
        found = []
        if len(lines) > max_file:
            found.append((path, f"{path}: {len(lines)} lines (limit {max_file})"))
        for name, line, length in long_functions(lines, max_fn):
            found.append((f"{path}:{name}", f"{path}:{line}: fn {name}: {length} lines (limit {max_fn})"))
        for key, text in found:
            if key in KEPT:
                kept += 1
                print(f"kept  {text}: {KEPT[key]}")
            else:
                over += 1
                print(f"OVER  {text}")
    print(f"{over} over the limits, {kept} kept longer on purpose")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
