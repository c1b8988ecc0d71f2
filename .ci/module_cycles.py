#!/usr/bin/env python3
"""Fails when top-level modules of a crate depend on each other in a loop.

A module is src/NAME.rs or src/NAME/; it depends on another when its code (tests aside: what
follows `#[cfg(test)]` in a file) names `crate::OTHER`. Every strongly connected group of two or
more modules is printed with one path that ties each pair; exit 1 if there is any.
usage: .ci/module_cycles.py CRATE/src [CRATE/src ...]
"""
import re
import sys
from pathlib import Path

REFERENCE = re.compile(r"\bcrate::(\w+)")
COMMENT = re.compile(r"//[^\n]*")


def dependencies(src: Path) -> dict[str, set[str]]:
    modules = {p.stem for p in src.glob("*.rs")} | {p.name for p in src.iterdir() if p.is_dir()}
    modules -= {"lib", "main"}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for file in src.rglob("*.rs"):
        top = file.relative_to(src).parts[0].removesuffix(".rs")
        if top not in modules:
            continue
        code = COMMENT.sub("", file.read_text(errors="replace").split("#[cfg(test)]")[0])
        graph[top] |= {m for m in REFERENCE.findall(code) if m in modules and m != top}
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively."""
    index, low, on_stack, stack, groups, counter = {}, {}, set(), [], [], [0]
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            advanced = False
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return groups


def main() -> int:
    failed = False
    for arg in sys.argv[1:]:
        graph = dependencies(Path(arg))
        groups = strongly_connected(graph)
        print(f"{arg}: {len(graph)} modules, {len(groups)} cycles")
        for group in groups:
            failed = True
            ties = [f"{a} -> {b}" for a in group for b in sorted(graph[a]) if b in group]
            print("  cycle: " + ", ".join(ties))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
