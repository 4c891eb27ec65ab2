#!/usr/bin/env python3
"""Fails when the modules of a crate depend on each other in a cycle.

Job: for every library crate of the workspace (`src/lib.rs` and
`crates/*/src/lib.rs`), build the dependency graph between its file modules
(`proxy::forward`, `policy::activity`, ...) from the paths its code names, and
exit 1 printing each cycle, with the file and line behind every edge. Run by
`.ci/run`; `--self-test` checks the script itself on a small temporary tree.

    scripts/check_module_dag.py [--root DIR] [--allow FILE]
    scripts/check_module_dag.py --self-test

What counts as an edge from module M (the file being read) to module N:

- a path in a `use` item (braces expanded) or anywhere in code that starts
  with `crate::`, `super::`, `self::` or the name of one of M's child modules:
  `crate::a::b::Item` is a dependency on `a::b` when `a/b.rs` or `a/b/mod.rs`
  exists, else on `a`; a path that names no module of the crate (an extern
  crate, or one re-exported at the root, as the gateway does with the engine's
  modules) is no edge: Cargo already forbids cycles between crates.
- `super::` and `self::` are resolved from M, counting inline modules
  (`mod inner { use super::*; }` is M itself).
- Parent modules and re-exports: `mod x;` declarations and `pub use` items
  (re-exports, as `mod.rs` files make) are not edges. A path through a
  re-export, or through any `use` of the module it lands on, is followed to
  the module that defines the item: `crate::policy::Decision`, re-exported by
  `policy/mod.rs` from `decide.rs`, is a dependency on `policy::decide`, not
  on `policy`. Everything else a `mod.rs` does with its children (calling
  them, holding their types) is an edge like any other, and so is a child's
  use of what its parent's file defines: a parent that calls a child which
  uses the parent's own items is a cycle, fixed by moving the shared items to
  a file of their own (as `settings/problems.rs`, `cli/context.rs` do).
- Comments, string and char literals are ignored, and so is code under
  `#[cfg(test)]` (inline `mod tests { ... }` blocks and `#[cfg(test)] mod x;`
  files): test fixtures may reach across modules.

A second, coarser pass collapses every module to its top-level module
(`proxy::route` is `proxy`) and reads test code and `crate::x` paths named in
comments too: a cycle between
top-level modules (`admin -> proxy -> admin`), even one closed only by a
test, is an error (allow-listed edges are left out of this pass too).

Limits: a textual reading, not rustc's name resolution. `#[path]` attributes,
macros that build paths (`$crate::` is ignored) and `use` of an item through
a local alias are not followed; binary roots (`src/main.rs`) are not read.

The allow-list (`scripts/module_dag_allow.txt` by default) names edges that
are known to close a cycle, one per line, each with a `#` comment saying why:

    socialgate proxy::forward -> proxy::server   # why, and who removes it

Listed edges are left out of the graph. An entry that is no longer on a cycle
(or no longer an edge) is an error too, so the list only shrinks.
"""

import argparse
import os
import re
import sys
import tempfile
from collections import defaultdict, deque

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------
# Reading Rust text


def strip_code(text):
    """`text` with comments and string/char literals blanked (newlines kept)."""
    out = []
    i, n = 0, len(text)

    def blank(s):
        return "".join("\n" if c == "\n" else " " for c in s)

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(blank(text[i:j]))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(blank(text[i:j]))
            i = j
        elif c in "rb" and re.match(r"(?:br|r)#*\"", text[i:i + 300]) and not (
            i and (text[i - 1].isalnum() or text[i - 1] == "_")
        ):
            m = re.match(r"(?:br|r)(#*)\"", text[i:])
            end = text.find('"' + m.group(1), i + m.end())
            j = n if end < 0 else end + 1 + len(m.group(1))
            out.append(blank(text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(blank(text[i:j + 1]))
            i = j + 1
        elif c == "'":
            m = re.match(r"'(?:\\(?:u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)|[^\\'])'", text[i:])
            if m:
                out.append(blank(m.group(0)))
                i += m.end()
            else:  # a lifetime
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


USE_RE = re.compile(r"\buse\s+([^;]+);")
PATH_RE = re.compile(r"(?<![\w$:.])(\w+(?:\s*::\s*\w+)+)")
MOD_OPEN_RE = re.compile(r"\bmod\s+(\w+)\s*\{")
CFG_TEST_RE = re.compile(
    r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*([;{])"
)
PUB_IN_RE = re.compile(r"\bpub\s*\(\s*in\s+[^)]*\)")


class FileInfo:
    def __init__(self, module, path, text, keep_tests=False):
        self.module = module
        self.path = path
        self.code = PUB_IN_RE.sub(lambda m: " " * len(m.group(0)), strip_code(text))
        # `#[cfg(test)] mod x { ... }` blocks are blanked out; the names of
        # `#[cfg(test)] mod x;` children are kept, to skip their files.
        self.test_children = set()
        if not keep_tests:
            self.code = self._drop_test_blocks(self.code)
        # Inline `mod x { ... }` bodies as (start, end), for `super` resolution.
        self.inline = self._inline_spans(self.code)
        # What `use` items bring into this module's namespace (visible to its
        # descendants through `super::`, and to all when `pub`): name -> path
        # as written; and the paths of glob imports.
        self.imports = {}
        self.globs = []
        self._read_imports()

    def _drop_test_blocks(self, code):
        out = code
        for m in list(CFG_TEST_RE.finditer(code)):
            if m.group(2) == ";":
                self.test_children.add(m.group(1))
                continue
            start = m.start()
            j, depth = m.end(), 1
            while j < len(code) and depth:
                if code[j] == "{":
                    depth += 1
                elif code[j] == "}":
                    depth -= 1
                j += 1
            span = out[start:j]
            out = out[:start] + "".join("\n" if c == "\n" else " " for c in span) + out[j:]
        return out

    @staticmethod
    def _inline_spans(code):
        spans = []
        for m in MOD_OPEN_RE.finditer(code):
            j, depth = m.end(), 1
            while j < len(code) and depth:
                if code[j] == "{":
                    depth += 1
                elif code[j] == "}":
                    depth -= 1
                j += 1
            spans.append((m.end(), j))
        return spans

    def inline_depth(self, pos):
        return sum(1 for s, e in self.inline if s <= pos < e)

    def line_of(self, pos):
        return self.code.count("\n", 0, pos) + 1

    def _read_imports(self):
        for m in USE_RE.finditer(self.code):
            for segs, alias in expand_use_with_alias(m.group(1)):
                if segs and segs[-1] == "*":
                    self.globs.append(segs[:-1])
                elif segs and (alias or segs[-1]) != "_":
                    self.imports[alias or segs[-1]] = segs

    def defines(self, name):
        return re.search(
            r"\b(?:fn|struct|enum|trait|type|const|static|union|mod)\s+" + re.escape(name) + r"\b",
            self.code,
        ) or re.search(r"macro_rules!\s*" + re.escape(name) + r"\b", self.code)


def expand_use_with_alias(tree):
    """`a::{b, c::{d as e}}` -> [([a, b], None), ([a, c, d], "e")]."""
    results = []
    for part in _leaves(re.sub(r"\s+", " ", tree).strip()):
        m = re.match(r"^(.*?)\s+as\s+(\w+)$", part)
        path, alias = (m.group(1), m.group(2)) if m else (part, None)
        segs = [s.strip() for s in path.split("::") if s.strip()]
        results.append((segs, alias))
    return results


def _leaves(tree):
    """Flattens a use tree into `a::b::c [as d]` strings."""
    tree = tree.strip()
    brace = tree.find("{")
    if brace < 0:
        return [tree]
    head = tree[:brace].strip()
    inner = tree[brace + 1:tree.rfind("}")]
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    out = []
    for p in parts:
        p = p.strip()
        if not p:
            continue
        if p == "self":
            out.append(head.rstrip(": "))
            continue
        for leaf in _leaves(p):
            out.append(head + leaf if head.endswith("::") else head + "::" + leaf)
    return out


# ---------------------------------------------------------------------------
# One crate


def module_of(src, path):
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] == "mod":
        rel = rel[:-1]
    if rel == ["lib"]:
        return ()
    return tuple(rel)


def fmt(module):
    return "::".join(module) if module else "crate"


class Crate:
    def __init__(self, name, src, keep_tests=False):
        self.name = name
        self.src = src
        self.files = {}
        for d, _, names in os.walk(src):
            for f in sorted(names):
                if not f.endswith(".rs"):
                    continue
                path = os.path.join(d, f)
                if os.path.relpath(path, src) in ("main.rs",) or os.path.relpath(path, src).startswith(
                    "bin" + os.sep
                ):
                    continue
                with open(path, encoding="utf-8") as fh:
                    text = fh.read()
                module = module_of(src, path)
                self.files[module] = FileInfo(module, path, text, keep_tests)
        # Files declared under #[cfg(test)] in their parent: skipped.
        for module, info in list(self.files.items()):
            for child in info.test_children:
                self.files.pop(module + (child,), None)

    def module_prefix(self, segs):
        """The longest prefix of `segs` (absolute) that is a module file, and the rest."""
        for k in range(len(segs), -1, -1):
            if tuple(segs[:k]) in self.files:
                return tuple(segs[:k]), list(segs[k:])
        return None, segs

    def resolve(self, segs, seen=None):
        """The module an absolute path (segments after `crate`) depends on, or None."""
        seen = set() if seen is None else seen
        module, rest = self.module_prefix(segs)
        if module is None:
            return None
        if not rest:
            return module
        name, info = rest[0], self.files[module]
        if (module, name) in seen:
            return module
        seen.add((module, name))
        target = info.imports.get(name)
        if target is not None:
            absolute = self.absolute(module, target, 0)
            if absolute is None:
                return None  # an item of another crate, imported here
            return self.resolve(absolute + rest[1:], seen)
        if info.defines(name):
            return module
        for g in info.globs:
            absolute = self.absolute(module, g, 0)
            if absolute is None:
                continue
            gmod, grest = self.module_prefix(absolute)
            if gmod is not None and not grest and self.files[gmod].defines(name):
                return self.resolve(absolute + rest, seen)
        # Not found: at the root, another crate's (re-exported); elsewhere,
        # something this reading cannot see (a macro's item), so the module.
        return None if module == () else module

    def absolute(self, module, segs, inline_depth):
        """A path as written in `module` (at `inline_depth` inline modules
        deep) -> absolute segments, or None for another crate's path."""
        if not segs:
            return None
        if segs[0] == "crate":
            return list(segs[1:])
        if segs[0] == "self":
            return list(module) if inline_depth else list(module) + list(segs[1:])
        if segs[0] == "super":
            here, depth, i = list(module), inline_depth, 0
            while i < len(segs) and segs[i] == "super":
                if depth:
                    depth -= 1
                elif here:
                    here.pop()
                else:
                    return None
                i += 1
            # Still inside an inline module: an item of this file.
            return list(module) if depth else here + list(segs[i:])
        # A bare path names a child module (or another crate, or, inside an
        # inline module, something of that module's own).
        if not inline_depth and tuple(list(module) + [segs[0]]) in self.files:
            return list(module) + list(segs)
        return None

    def edges(self):
        """{(from, to): [(file, line), ...]}"""
        found = defaultdict(list)
        for module, info in self.files.items():
            refs = []
            use_spans = []
            for m in USE_RE.finditer(info.code):
                use_spans.append((m.start(), m.end()))
                if REEXPORT_RE.search(info.code[max(0, m.start() - 40):m.start() + 3]):
                    continue  # a re-export: followed from its users instead
                for segs, _ in expand_use_with_alias(m.group(1)):
                    refs.append((m.start(), segs))
            for m in PATH_RE.finditer(info.code):
                if not any(s <= m.start() < e for s, e in use_spans):
                    refs.append((m.start(), [s.strip() for s in m.group(1).split("::")]))
            for pos, segs in refs:
                segs = [s for s in segs if s != "*"]
                absolute = self.absolute(module, segs, info.inline_depth(pos))
                if absolute is None:
                    continue
                target = self.resolve(absolute)
                if target is None or target == module:
                    continue
                where = (os.path.relpath(info.path, ROOT_FOR_REPORT[0]), info.line_of(pos))
                if where not in found[(module, target)]:
                    found[(module, target)].append(where)
        return found


REEXPORT_RE = re.compile(r"\bpub(?:\s*\([^)]*\))?\s+use\s*$")
ROOT_FOR_REPORT = [ROOT]


# ---------------------------------------------------------------------------
# Cycles


def sccs(nodes, adj):
    """Tarjan's strongly connected components (iterative)."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(adj[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(adj[w]))))
                    advanced = True
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(comp)
    return out


def shortest_cycle(start, members, adj):
    """A shortest cycle through `start` inside `members`, as a node list."""
    prev = {start: None}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in sorted(adj[v]):
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return list(reversed(path)) + [start]
            if w in members and w not in prev:
                prev[w] = v
                queue.append(w)
    return [start, start]


def read_allow(path):
    """[(crate, from, to, line_no)], and errors."""
    entries, errors = [], []
    if not path or not os.path.exists(path):
        return entries, errors
    with open(path, encoding="utf-8") as fh:
        for no, line in enumerate(fh, 1):
            body, _, comment = line.partition("#")
            if not body.strip():
                continue
            m = re.match(r"^\s*([\w-]+)\s+([\w:]+)\s*->\s*([\w:]+)\s*$", body)
            if not m:
                errors.append(f"{path}:{no}: expected `CRATE FROM -> TO   # why`")
                continue
            if not comment.strip():
                errors.append(f"{path}:{no}: every allowed edge needs a `# comment` saying why")
            entries.append((m.group(1), m.group(2), m.group(3), no))
    return entries, errors


def to_module(name):
    return () if name == "crate" else tuple(name.split("::"))


def check(root, allow_path, out=sys.stdout):
    """Returns the exit code: 0 no cycle, 1 a cycle or a bad allow-list."""
    ROOT_FOR_REPORT[0] = root
    crates = []
    if os.path.exists(os.path.join(root, "src", "lib.rs")):
        crates.append((crate_name(root), os.path.join(root, "src")))
    crates_dir = os.path.join(root, "crates")
    if os.path.isdir(crates_dir):
        for d in sorted(os.listdir(crates_dir)):
            src = os.path.join(crates_dir, d, "src")
            if os.path.exists(os.path.join(src, "lib.rs")):
                crates.append((crate_name(os.path.join(crates_dir, d)), src))
    allow, problems = read_allow(allow_path)
    used = set()
    failed = bool(problems)
    for msg in problems:
        print(msg, file=out)
    for name, src in crates:
        crate = Crate(name, src)
        edges = crate.edges()
        full = defaultdict(set)
        for a, b in edges:
            full[a].add(b)
        nodes = set(crate.files)
        full_scc = {}
        for i, comp in enumerate(sccs(nodes, full)):
            for v in comp:
                full_scc[v] = i
        adj = defaultdict(set)
        for (a, b) in edges:
            allowed = [e for e in allow if e[0] == name and to_module(e[1]) == a and to_module(e[2]) == b]
            if allowed:
                used.update(e[3] for e in allowed)
                continue
            adj[a].add(b)
        for e in allow:
            if e[0] != name:
                continue
            a, b = to_module(e[1]), to_module(e[2])
            if (a, b) not in edges:
                print(f"{allow_path}:{e[3]}: {name}: {e[1]} -> {e[2]} is not an edge any more; remove it", file=out)
                failed = True
            elif full_scc.get(a) != full_scc.get(b):
                print(f"{allow_path}:{e[3]}: {name}: {e[1]} -> {e[2]} closes no cycle any more; remove it", file=out)
                failed = True
        for comp in sccs(nodes, adj):
            members = set(comp)
            if len(comp) == 1 and comp[0] not in adj[comp[0]]:
                continue
            failed = True
            cycle = shortest_cycle(min(comp), members, adj)
            print(f"module cycle in crate {name}: " + " -> ".join(fmt(m) for m in cycle), file=out)
            for a, b in zip(cycle, cycle[1:]):
                where = edges[(a, b)][:3]
                print(f"  {fmt(a)} -> {fmt(b)}: " + ", ".join(f"{f}:{l}" for f, l in where), file=out)
            if len(comp) > len(cycle) - 1:
                print(f"  (all modules of this cycle's component: {', '.join(sorted(fmt(m) for m in comp))})", file=out)
        allowed_edges = {(to_module(e[1]), to_module(e[2])) for e in allow if e[0] == name}
        if top_level_cycles(name, src, allowed_edges, out):
            failed = True
    for e in allow:
        if e[0] not in [c[0] for c in crates]:
            print(f"{allow_path}:{e[3]}: no crate named {e[0]}", file=out)
            failed = True
    if not failed:
        print(f"module graph: no cycles in {', '.join(c[0] for c in crates)}", file=out)
    return 1 if failed else 0


def top_level_cycles(name, src, allowed_edges, out):
    """The coarse check: modules collapsed to their top-level module (`proxy`,
    `admin`, `policy`, ...), test code included; only the allow-listed edges
    are left out. Prints each cycle with the places behind its edges; returns
    whether there was one."""
    crate = Crate(name, src, keep_tests=True)
    edges = defaultdict(list)
    for (a, b), where in crate.edges().items():
        if (a, b) in allowed_edges:
            continue
        if a and b and a[0] != b[0]:
            edges[((a[0],), (b[0],))].extend(where)
    # A `crate::x` written in a comment (a doc link, "called by `crate::x`")
    # counts too: readers and other tools take it as a dependency.
    tops = {m[0] for m in crate.files if m}
    for module, info in crate.files.items():
        if not module:
            continue
        with open(info.path, encoding="utf-8") as fh:
            raw = fh.read()
        code = strip_code(raw)
        for m in re.finditer(r"\bcrate::(\w+)", raw):
            target = m.group(1)
            if target not in tops or target == module[0] or code[m.start()] != " ":
                continue  # not another top-level module, or a path in code (read above)
            line_start = raw.rfind("\n", 0, m.start()) + 1
            slashes = raw.find("//", line_start, m.start())
            if slashes < 0 or code[slashes] != " ":
                continue  # inside a string literal, not a comment
            if any(a == module and b[:1] == (target,) for a, b in allowed_edges):
                continue
            where = (os.path.relpath(info.path, ROOT_FOR_REPORT[0]), raw.count("\n", 0, m.start()) + 1)
            key = ((module[0],), (target,))
            if where not in edges[key]:
                edges[key].append(where)
    adj = defaultdict(set)
    for a, b in edges:
        adj[a].add(b)
    nodes = {m[:1] for m in crate.files if m}
    found = False
    for comp in sccs(nodes, adj):
        if len(comp) == 1:
            continue
        found = True
        cycle = shortest_cycle(min(comp), set(comp), adj)
        print(f"top-level module cycle in crate {name} (test code included): " + " -> ".join(fmt(m) for m in cycle), file=out)
        for a, b in zip(cycle, cycle[1:]):
            where = edges[(a, b)][:3]
            print(f"  {fmt(a)} -> {fmt(b)}: " + ", ".join(f"{f}:{l}" for f, l in where), file=out)
    return found


def crate_name(dir_):
    with open(os.path.join(dir_, "Cargo.toml"), encoding="utf-8") as fh:
        text = fh.read()
    m = re.search(r'^\[package\][^\[]*?^name\s*=\s*"([^"]+)"', text, re.M | re.S)
    return m.group(1) if m else os.path.basename(dir_)


# ---------------------------------------------------------------------------
# Self-test


def self_test():
    import io

    def tree(files):
        d = tempfile.mkdtemp(prefix="module-dag-")
        files = dict(files)
        files.setdefault("Cargo.toml", '[package]\nname = "demo"\n')
        for rel, text in files.items():
            p = os.path.join(d, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w", encoding="utf-8") as fh:
                fh.write(text)
        return d

    def run(files, allow=None):
        d = tree(files)
        allow_path = None
        if allow is not None:
            allow_path = os.path.join(d, "allow.txt")
            with open(allow_path, "w", encoding="utf-8") as fh:
                fh.write(allow)
        buf = io.StringIO()
        code = check(d, allow_path, buf)
        return code, buf.getvalue()

    failures = []

    def expect(name, got, want_code, *want_text, absent=()):
        code, text = got
        if code != want_code or any(w not in text for w in want_text) or any(a in text for a in absent):
            failures.append(f"{name}: exit {code} (wanted {want_code})\n{text}")

    base = {
        "src/lib.rs": "pub mod a;\npub mod b;\npub mod c;\npub use ext::thing;\n",
        "src/c/mod.rs": "mod d;\npub use d::Gadget;\npub use self::d::{Other as Renamed};\n"
        "pub fn orchestrate() { d::run(); }\n",
        "src/c/d.rs": "pub struct Gadget;\npub struct Other;\npub fn run() {}\n",
    }
    # No cycle: a -> b; c -> c::d (c calls d::run; its re-exports are no edges).
    ok = dict(base)
    ok["src/a.rs"] = "use crate::b::{Thing, more::{X}};\n// crate::b uses crate::a in a comment only\n"
    ok["src/b.rs"] = (
        'pub struct Thing;\nconst S: &str = "crate::a::f";\nconst C: char = \'"\';\n'
        "fn g<'a>(x: &'a str) -> &'a str { x }\n"
        "#[cfg(test)]\nmod tests {\n    use crate::c::*;\n    use super::*;\n}\n"
    )
    expect("no cycle", run(ok), 0, "no cycles in demo")
    # Test code is left out of the file-level graph but counts at the top level.
    top = dict(ok)
    top["src/b.rs"] = "pub struct Thing;\n#[cfg(test)]\nmod tests {\n    use crate::a::*;\n}\n"
    expect(
        "top-level, test code",
        run(top),
        1,
        "top-level module cycle in crate demo (test code included): a -> b -> a",
        "src/b.rs:4",
        absent=("module cycle in crate demo: a",),
    )
    # Nested modules collapse to their top-level module: a -> c::d and c::d -> a.
    nest = dict(base)
    nest["src/a.rs"] = "pub fn f() { crate::c::orchestrate(); }\n"
    nest["src/b.rs"] = ""
    nest["src/c/d.rs"] = "pub struct Gadget;\npub struct Other;\npub fn run() { crate::a::f(); }\n"
    expect("top-level, nested", run(nest), 1, "top-level module cycle in crate demo (test code included): a -> c -> a")
    # A path named only in a comment closes a top-level cycle too.
    doc = dict(ok)
    doc["src/b.rs"] = "//! Called by `crate::a`.\npub struct Thing;\n"
    expect("top-level, comment", run(doc), 1, "top-level module cycle in crate demo (test code included): a -> b -> a", "src/b.rs:1")
    # A cycle through a use item and a path in code.
    cyc = dict(ok)
    cyc["src/b.rs"] = "pub struct Thing;\npub fn g() { crate::a::f(); }\n"
    cyc["src/a.rs"] = "use crate::b::Thing;\npub fn f() {}\n"
    expect(
        "cycle a <-> b",
        run(cyc),
        1,
        "module cycle in crate demo: a -> b -> a",
        "src/a.rs:1",
        "src/b.rs:2",
    )
    # The allow-list breaks it; a stale or uncommented entry is an error.
    expect("allowed", run(cyc, "demo b -> a   # known, removed by branch x\n"), 0, "no cycles")
    expect("uncommented", run(cyc, "demo b -> a\n"), 1, "needs a `# comment`")
    expect("stale", run(ok, "demo b -> a   # gone\n"), 1, "is not an edge any more")
    # Re-exports are followed: a -> c (Gadget from c::d) and c::d -> a close a cycle
    # between a and c::d, not with c.
    rex = dict(base)
    rex["src/a.rs"] = "use crate::c::Gadget;\npub fn f() {}\n"
    rex["src/b.rs"] = ""
    rex["src/c/d.rs"] = "pub struct Gadget;\npub struct Other;\npub fn run() { crate::a::f(); }\n"
    expect("re-export", run(rex), 1, "module cycle in crate demo: a -> c::d -> a")
    rex2 = dict(rex)
    rex2["src/a.rs"] = "use crate::c::Renamed;\npub fn f() {}\n"
    expect("renamed re-export", run(rex2), 1, "a -> c::d -> a")
    # super:: from a nested file (two levels) and from an inline module.
    sup = dict(base)
    sup["src/a.rs"] = "pub fn f() {}\nmod inner {\n    use super::f;\n}\n"
    sup["src/b.rs"] = "pub fn g() {}\n"
    sup["src/c/d.rs"] = "pub struct Gadget;\npub struct Other;\npub fn run() { super::super::b::g(); }\n"
    expect("super, no cycle", run(sup), 0, "no cycles")
    sup["src/b.rs"] = "pub fn g() { crate::c::orchestrate(); }\n"
    expect("super::super", run(sup), 1, "module cycle in crate demo: b -> c -> c::d -> b", "src/c/d.rs:3")
    # A parent that calls its child while the child uses the parent: a cycle;
    # a parent that only declares and re-exports: none.
    par = dict(base)
    par["src/a.rs"] = par["src/b.rs"] = ""
    par["src/c/d.rs"] = "pub struct Gadget;\npub struct Other;\npub fn run() { super::helper(); }\n"
    par["src/c/mod.rs"] = base["src/c/mod.rs"] + "pub fn helper() {}\n"
    expect("parent and child", run(par), 1, "module cycle in crate demo: c -> c::d -> c", "src/c/mod.rs:4")
    par["src/c/mod.rs"] = "mod d;\npub use d::{Gadget, Other};\npub fn helper() {}\n"
    expect("re-exporting parent", run(par), 0, "no cycles")
    # Extern crates re-exported at the root are not modules of this crate.
    ext = dict(ok)
    ext["src/a.rs"] = "use crate::thing::X;\nuse crate::policy::Y;\n"
    expect("extern", run(ext), 0, "no cycles")
    # A second crate under crates/ is checked on its own.
    two = dict(ok)
    two["crates/core/Cargo.toml"] = '[package]\nname = "demo-core"\n'
    two["crates/core/src/lib.rs"] = "mod x;\nmod y;\n"
    two["crates/core/src/x.rs"] = "use crate::y::Y;\npub struct X;\n"
    two["crates/core/src/y.rs"] = "pub struct Y;\nfn f(_: crate::x::X) {}\n"
    expect("crates/", run(two), 1, "module cycle in crate demo-core: x -> y -> x", absent=("crate demo:",))
    # #[cfg(test)] mod files are skipped.
    tst = dict(ok)
    tst["src/b.rs"] = "pub struct Thing;\n#[cfg(test)]\nmod tests;\n"
    tst["src/b/tests.rs"] = "use crate::c::*;\n"
    expect("cfg(test) file", run(tst), 0, "no cycles")

    if failures:
        print("check_module_dag self-test FAILED:\n" + "\n".join(failures))
        return 1
    print("check_module_dag self-test: OK")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=ROOT, help="the workspace (default: this repository)")
    ap.add_argument("--allow", default=None, help="allow-list (default: scripts/module_dag_allow.txt)")
    ap.add_argument("--self-test", action="store_true", help="check this script on a temporary tree")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    allow = args.allow or os.path.join(args.root, "scripts", "module_dag_allow.txt")
    return check(os.path.abspath(args.root), allow)


if __name__ == "__main__":
    sys.exit(main())
